"""Each route's handler (routing.py names them), with what it needs of the backend."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.emulator.backend import Backend
from reconciler.emulator.dicomweb import qido, stow, wado
from reconciler.emulator.dicomweb.library import Library
from reconciler.emulator.dicomweb.request import Request, Response

Handler = Callable[[Request, Backend], Response]


def _reading(serve: Callable[[Request, Library], Response]) -> Handler:
    return lambda request, backend: serve(request, Library(backend.image_sets))


def _searching(level: qido.Level) -> Handler:
    return lambda request, backend: qido.search(level, request, Library(backend.image_sets))


HANDLERS: dict[str, Handler] = {
    "search_studies": _searching(qido.STUDY),
    "search_series": _searching(qido.SERIES),
    "search_instances": _searching(qido.INSTANCE),
    "series_metadata": _reading(wado.series_metadata),
    "instance_metadata": _reading(wado.instance_metadata),
    "instance": _reading(wado.instance),
    "frames": _reading(wado.frames),
    "store": stow.store,
}
