"""How deep a YAML text's flow collections nest, found in one linear pass before parsing.

Why: libyaml gives up on flow nesting at depth 1000 ("[" * 20000 + "]" * 20000), and
the pure-Python parser that would give the stable message keeps one possible simple key
per open bracket, so its cost grows with depth × length: a 40 KB file took minutes.
This scan looks at each character once and stops at the first bracket past the limit,
so a hostile file is refused in time linear in its size before any parser sees it.

It reads just enough YAML to not miscount: comments, quoted scalars (a quote counts only
where a scalar starts) and block scalars (``|``/``>``: their content is text) are
skipped; in block context ``[``/``{`` opens a collection only where a node starts (at a
line's start, after ``- ``, ``? `` or ``: ``, after an anchor or tag); in flow context
every bracket counts. Block nesting is left to the composer, which sees it event by
event without any parser blow-up.
"""

from __future__ import annotations

_SPACE = " \t"
_BREAK = "\r\n"
_OPEN = "[{"
_CLOSE = "]}"
_ENDS_PROPERTY = " \t\r\n[]{},"


def _end_of_line(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _skip_quoted(text: str, index: int) -> int:
    """Index just past the quoted scalar starting at ``index`` (the end if unclosed)."""
    quote = text[index]
    index += 1
    size = len(text)
    while index < size:
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and text.startswith("''", index):
                index += 2
                continue
            return index + 1
        index += 1
    return size


def _skip_block_scalar(text: str, index: int) -> int:
    """Index of the first line after the block scalar whose indicator is at ``index``."""
    indicator_line = text[text.rfind("\n", 0, index) + 1 : index]
    parent = len(indicator_line) - len(indicator_line.lstrip(" "))
    position = _end_of_line(text, index)
    size = len(text)
    while position < size:
        start = position + 1
        end = _end_of_line(text, start)
        line = text[start:end]
        content = line.lstrip(" ")
        if content.strip() and len(line) - len(content) <= parent:
            return start
        position = end
    return size


def _node_follows(text: str, index: int, depth: int) -> bool:
    """Whether a node may start after the character at ``index`` (an indicator)."""
    char = text[index]
    following = text[index + 1 : index + 2]
    if not following or following in " \t\r\n":
        return char in "-?:" or (depth > 0 and char == ",")
    return depth > 0 and (char == "," or (char == ":" and following in "[]{},"))


def too_deep(text: str, limit: int) -> int | None:
    """The index of the first ``[``/``{`` nested deeper than ``limit``, or None."""
    if text.count("[") + text.count("{") <= limit:  # cannot be deeper: nothing to scan
        return None
    depth = 0
    starts = True  # a node may start at the next non-blank character
    index = 0
    size = len(text)
    while index < size:
        char = text[index]
        if char in _SPACE:
            index += 1
        elif char in _BREAK:
            starts = starts or depth == 0
            index += 1
        elif char == "#" and (index == 0 or text[index - 1] in " \t\r\n"):
            index = _end_of_line(text, index)
        elif starts and char in "\"'":
            index = _skip_quoted(text, index)
            starts = False
        elif starts and char in "&!":  # an anchor or a tag: the node itself follows
            index += 1
            while index < size and text[index] not in _ENDS_PROPERTY:
                index += 1
        elif starts and depth == 0 and char in "|>":
            index = _skip_block_scalar(text, index)
        elif char in _OPEN and (starts or depth > 0):
            depth += 1
            if depth > limit:
                return index
            starts = True
            index += 1
        elif depth > 0 and char in _CLOSE:
            depth -= 1
            starts = False
            index += 1
        else:
            starts = _node_follows(text, index, depth)
            index += 1
    return None
