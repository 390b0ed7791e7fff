"""Spanish by default, English by ``Accept-Language`` (as the API's problems) or the switch.

Labels of steps, forms and facts come from the protocol files (``Text.get(lang)``); the pages'
own words are here, as (es, en) pairs like every message of the API.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import Request

from api.problems import language

LANG_COOKIE = "eri_lang"
LANGS = ("es", "en")

MESSAGES: dict[str, tuple[str, str]] = {
    "app.name": ("ERI", "ERI"),
    "nav.inbox": ("Mis tareas", "My tasks"),
    "nav.open_case": ("Abrir caso", "Open a case"),
    "nav.sign_out": ("Salir", "Sign out"),
    "nav.language": ("English", "Español"),
    "nav.main": ("Menú principal", "Main menu"),
    "quick_exit": ("Salida rápida", "Quick exit"),
    "quick_exit.hint": (
        "Cierra la sesión y abre otra página.",
        "Signs you out and opens another page.",
    ),
    "signin.title": ("Iniciar sesión", "Sign in"),
    "signin.name": ("Usuario", "User name"),
    "signin.password": ("Contraseña", "Password"),
    "signin.submit": ("Entrar", "Sign in"),
    "signin.oidc": ("Entrar con la cuenta institucional", "Sign in with your institution account"),
    "signin.failed": (
        "Usuario o contraseña incorrectos.",
        "Wrong user name or password.",
    ),
    "signin.link_invalid": (
        "El enlace ya se usó o caducó. Pida uno nuevo.",
        "The link was used already or has expired. Ask for a new one.",
    ),
    "signin.expired": (
        "Su sesión terminó por inactividad. Vuelva a entrar.",
        "Your session ended after inactivity. Please sign in again.",
    ),
    "signin.signed_out": ("Sesión cerrada.", "You are signed out."),
    "signin.oidc_failed": (
        "No se pudo iniciar sesión con el proveedor de identidad.",
        "Signing in with the identity provider failed.",
    ),
    "error.back": ("Volver al inicio", "Back to the start"),
    "required": ("obligatorio", "required"),
    "yes": ("Sí", "Yes"),
    "no": ("No", "No"),
    "unknown": ("No se sabe", "Not known"),
    "choose": ("Elija…", "Choose…"),
    "sets_fact": (
        "Esta respuesta queda como dato del caso y decide qué pasos siguen.",
        "This answer is recorded as a fact of the case and decides which steps follow.",
    ),
    "skip_link": ("Ir al contenido", "Skip to content"),
}

#: Validation codes of workflows.interpreter.validate_form (the API's 422), as sentences.
FIELD_ERRORS: dict[str, tuple[str, str]] = {
    "required": ("Este campo es obligatorio.", "This field is required."),
    "expected_boolean": ("Elija sí o no.", "Choose yes or no."),
    "expected_integer": ("Escriba un número entero.", "Enter a whole number."),
    "not_an_option": ("Elija una de las opciones.", "Choose one of the options."),
    "expected_text": ("Escriba un texto.", "Enter some text."),
    "too_long": ("El texto es demasiado largo.", "The text is too long."),
    "expected_date": ("Escriba una fecha (AAAA-MM-DD).", "Enter a date (YYYY-MM-DD)."),
    "expected_datetime": ("Escriba fecha y hora.", "Enter a date and time."),
    "expected_timezone": ("Falta la zona horaria.", "The time zone is missing."),
    "unknown_field": ("Campo desconocido.", "Unknown field."),
}


def lang(request: Request) -> str:
    """The switch's cookie if set, else ``Accept-Language`` (api.problems.language)."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGS:
        return chosen
    return language(request)


def pick(pair: tuple[str, str] | None, lang_: str) -> str:
    if pair is None:
        return ""
    return pair[0] if lang_ == "es" else pair[1]


def t(key: str, lang_: str) -> str:
    return pick(MESSAGES[key], lang_)


def field_error(code: str, lang_: str) -> str:
    return pick(FIELD_ERRORS.get(code, FIELD_ERRORS["expected_text"]), lang_)


def relative(due: datetime, now: datetime, lang_: str) -> str:
    """``in 3 h`` / ``2 h late`` (``en 3 h`` / ``2 h de retraso``)."""
    delta = due - now
    late = delta < timedelta(0)
    seconds = abs(delta.total_seconds())
    if seconds < 3600:
        amount = f"{max(1, round(seconds / 60))} min"
    elif seconds < 48 * 3600:
        amount = f"{round(seconds / 3600)} h"
    else:
        amount = f"{round(seconds / 86400)} d"
    if late:
        return f"{amount} de retraso" if lang_ == "es" else f"{amount} late"
    return f"en {amount}" if lang_ == "es" else f"in {amount}"


_WEEKDAYS = {
    "es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def local_time(at: datetime, timezone: str, lang_: str) -> str:
    """``mar 01/12 14:30`` in the protocol's time zone (the team's local time)."""
    local = at.astimezone(ZoneInfo(timezone))
    day = _WEEKDAYS["es" if lang_ == "es" else "en"][local.weekday()]
    if lang_ == "es":
        return f"{day} {local:%d/%m %H:%M}"
    return f"{day} {local:%m/%d %H:%M}"
