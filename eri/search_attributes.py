"""The Temporal search attributes ERI registers: opaque ids and coded values only.

One list serves the dev server (``--search-attribute``), the test environments and the
workflows that upsert them. Nothing here may identify a person.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CASE_ID = SearchAttributeKey.for_keyword("EriCaseId")
PROTOCOL_ID = SearchAttributeKey.for_keyword("EriProtocolId")
PROTOCOL_VERSION = SearchAttributeKey.for_keyword("EriProtocolVersion")
COUNTRY = SearchAttributeKey.for_keyword("EriCountry")
PHASE = SearchAttributeKey.for_keyword("EriPhase")
OPEN_TASKS = SearchAttributeKey.for_int("EriOpenTasks")
OVERDUE = SearchAttributeKey.for_bool("EriOverdue")
INSTITUTIONS = SearchAttributeKey.for_keyword_list("EriInstitutions")

ALL: tuple[SearchAttributeKey, ...] = (  # type: ignore[type-arg]
    CASE_ID,
    PROTOCOL_ID,
    PROTOCOL_VERSION,
    COUNTRY,
    PHASE,
    OPEN_TASKS,
    OVERDUE,
    INSTITUTIONS,
)

_CLI_TYPES = {
    "KEYWORD": "Keyword",
    "INT": "Int",
    "BOOL": "Bool",
    "KEYWORD_LIST": "KeywordList",
    "TEXT": "Text",
    "DOUBLE": "Double",
    "DATETIME": "Datetime",
}


def cli_args() -> list[str]:
    """``--search-attribute Name=Type`` pairs for ``temporal server start-dev``."""
    args: list[str] = []
    for key in ALL:
        args += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return args
