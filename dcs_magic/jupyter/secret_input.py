"""`SecretInput`: a password box whose value is never widget state (the launch form's "Store as
secret").

An `ipywidgets.Password` syncs what is typed into its `value` trait: it sits in the kernel's
and the page's widget state (and in a notebook saved with widget state) until something empties
it. `SecretInput` is an anywidget whose front-end (js/secret-input.js + .css) draws a labelled
native `<input type="password" autocomplete="off">` and a button; what is typed stays in the
page's input until the button is clicked or Enter is pressed, then goes to the kernel once, in a
custom message (`{"type": "submit", "value": ...}`), and the input is emptied. Here it is
wrapped in `model.credentials.Secret` at once and handed to the `on_submit` callback; the
widget answers `{"type": "done"}` when the callback returned (the page then takes the next
submit). Its synced traits are plain text only: `label`, `placeholder`, `button`, `button_tooltip`,
`disabled`.

`submit(Secret)` is what that message does, for code and tests that drive the widget from
Python; `_handle_custom_msg(content, buffers)` (ipywidgets' own dispatch) takes the message as
the page sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets as t

from ..model.credentials import Secret
from .widgets import asset_path, compact_source

__all__ = ["SecretInput"]


class SecretInput(anywidget.AnyWidget):
    """A labelled password box and its button; what is typed reaches `on_submit` as a `Secret`
    and is in no trait."""

    _esm = compact_source(asset_path("secret-input.js").read_text(encoding="utf-8"))
    _css = compact_source(asset_path("secret-input.css").read_text(encoding="utf-8"))

    label = t.Unicode("Password", help="the box's label (tied to it: `<label for>`)").tag(sync=True)
    placeholder = t.Unicode("", help="the empty box's hint").tag(sync=True)
    button = t.Unicode("Submit", help="the button's text").tag(sync=True)
    button_tooltip = t.Unicode("", help="the button's title (`tooltip` would title the whole widget)").tag(sync=True)
    disabled = t.Bool(False, help="box and button disabled (the page sends nothing)").tag(sync=True)

    def __init__(self, on_submit: Callable[[Secret], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_submit = on_submit
        self.on_msg(self._on_front_end_msg)

    def submit(self, password: Secret) -> None:
        """Hand `password` to `on_submit`, as the page's message does (an empty one too: the
        callback says that nothing was typed)."""
        if not isinstance(password, Secret):
            raise TypeError(f"SecretInput.submit takes a Secret, not {type(password).__name__}")
        if self._on_submit is not None:
            self._on_submit(password)

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "submit":
            return
        # Popped, not read: the message (the same dict up the call stack) keeps no copy, and
        # no frame holds it unwrapped (a verbose traceback shows locals).
        password = Secret(_text(content.pop("value", None)))
        try:
            self.submit(password)
        finally:
            if self.comm is not None:
                self.send({"type": "done"})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
