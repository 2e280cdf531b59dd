"""The kernel's small C helpers, one copy each, with the kernel's contracts.

``lib/kstrtox.c`` (kstrtoull and friends return ``(err, value)``: err is 0, -EINVAL or
-ERANGE, as the C functions return 0/-errno and store the value), ``include/linux/ctype.h``
(ASCII only: ``str.isalnum()`` would accept non-ASCII letters the kernel rejects),
``lib/glob.c``, ``lib/argv_split.c``, ``lib/string.c``'s strim(), ``lib/bitmap-str.c``'s
bitmap_parse() and trace.h's name checks, plus the constants every
module shares (``PAGE_SIZE``, ``MASK64``).  Parsers elsewhere call these instead of
re-deriving them, so a corner case (a trailing newline, ``0x`` with no digits, a
non-ASCII digit) is decided in one place.
"""

from __future__ import annotations

import errno
import re

PAGE_SIZE = 4096
MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1

# ------------------------------------------------------------------ include/linux/ctype.h
# lib/ctype.c marks 0x09-0x0d, space and 0xa0 (_S|_SP) as space
_SPACE_CHARS = " \t\n\v\f\r\xa0"
_SPACE = frozenset(_SPACE_CHARS)


def isdigit(c: str) -> bool:
    return len(c) == 1 and "0" <= c <= "9"


def isalpha(c: str) -> bool:
    return len(c) == 1 and (("a" <= c <= "z") or ("A" <= c <= "Z"))


def isalnum(c: str) -> bool:
    return isalpha(c) or isdigit(c)


def isxdigit(c: str) -> bool:
    return isdigit(c) or (len(c) == 1 and "a" <= c.lower() <= "f")


def isspace(c: str) -> bool:
    return c in _SPACE and len(c) == 1


def _digit_val(c: str) -> int:
    if isdigit(c):
        return ord(c) - 48
    lc = c.lower()
    if len(lc) == 1 and "a" <= lc <= "z":
        return ord(lc) - 87
    return 99


# ------------------------------------------------------------------------ lib/kstrtox.c
def _fixup_radix(s: str, base: int) -> tuple[int, int]:
    """``_parse_integer_fixup_radix``: (base, index past the prefix)."""
    if base == 0:
        if s[:1] == "0":
            if s[1:2].lower() == "x" and isxdigit(s[2:3]):
                return 16, 2
            return 8, 0
        return 10, 0
    if base == 16 and s[:1] == "0" and s[1:2].lower() == "x":
        return 16, 2
    return base, 0


def kstrtoull(s: str, base: int = 0) -> tuple[int, int]:
    """(err, value): the whole string (one trailing newline allowed) is the number."""
    if s[:1] == "+":
        s = s[1:]
    base, i = _fixup_radix(s, base)
    val = 0
    n = 0
    overflow = False
    while i < len(s):
        d = _digit_val(s[i])
        if d >= base:
            break
        val = val * base + d
        if val > MASK64:
            overflow = True
        i += 1
        n += 1
    if n == 0:
        return -errno.EINVAL, 0
    if overflow:
        return -errno.ERANGE, 0
    rest = s[i:]
    if rest and rest != "\n":
        return -errno.EINVAL, 0
    return 0, val


def kstrtoul(s: str, base: int = 0) -> tuple[int, int]:
    return kstrtoull(s, base)


def _in_range(got: tuple[int, int], lo: int, hi: int) -> tuple[int, int]:
    """The narrowing step of kstrtouint()/kstrtoll()/kstrtoint(): an error passes
    through, a value outside [lo, hi] is -ERANGE."""
    err, v = got
    if err:
        return err, 0
    if not lo <= v <= hi:
        return -errno.ERANGE, 0
    return 0, v


def kstrtouint(s: str, base: int = 0) -> tuple[int, int]:
    return _in_range(kstrtoull(s, base), 0, MASK32)


def kstrtobool(s: str) -> tuple[int, bool]:
    """(err, value) as lib/kstrtox.c kstrtobool(): y/Y/t/T/1 or on, n/N/f/F/0 or off
    (only the first characters count); what a bool module parameter takes."""
    c = s[:1]
    if c in ("y", "Y", "t", "T", "1"):
        return 0, True
    if c in ("n", "N", "f", "F", "0"):
        return 0, False
    if c in ("o", "O"):
        if s[1:2] in ("n", "N"):
            return 0, True
        if s[1:2] in ("f", "F"):
            return 0, False
    return -errno.EINVAL, False


def kstrtoll(s: str, base: int = 0) -> tuple[int, int]:
    if s[:1] == "-":
        err, v = _in_range(kstrtoull(s[1:], base), 0, 1 << 63)
        return err, -v
    return _in_range(kstrtoull(s, base), 0, (1 << 63) - 1)


def kstrtol(s: str, base: int = 0) -> tuple[int, int]:
    return kstrtoll(s, base)


def kstrtoint(s: str, base: int = 0) -> tuple[int, int]:
    return _in_range(kstrtoll(s, base), -(1 << 31), (1 << 31) - 1)


def simple_strtoul(s: str, base: int = 0) -> tuple[int, int]:
    """(value, index of the first unparsed character); never fails, wraps at 64 bits."""
    base, i = _fixup_radix(s, base)
    val = 0
    while i < len(s):
        d = _digit_val(s[i])
        if d >= base:
            break
        val = (val * base + d) & MASK64
        i += 1
    return val, i


# --------------------------------------------------------------------- lib/argv_split.c
def argv_split(text: str) -> list[str]:
    """Split on runs of isspace() characters, no quoting (Python's split() would also
    split on other Unicode and \\x1c-\\x1f separators)."""
    out: list[str] = []
    word: list[str] = []
    for c in text:
        if c in _SPACE:
            if word:
                out.append("".join(word))
                word = []
        else:
            word.append(c)
    if word:
        out.append("".join(word))
    return out


# --------------------------------------------------------------------------- lib/string.c
def strim(s: str) -> str:
    """strim() / strstrip(): isspace() characters removed at both ends (``str.strip()``
    would also remove \\x1c-\\x1f and \\x85)."""
    return s.strip(_SPACE_CHARS)


def user_cstring(data: bytes) -> str:
    """A write's buffer as the C string its handler parses (copy_from_user() then
    ``buf[cnt] = 0``, or memdup_user_nul()): up to the first NUL, one char per byte."""
    nul = data.find(b"\0")
    return (data if nul < 0 else data[:nul]).decode("latin-1")


# --------------------------------------------------------------------- lib/bitmap-str.c
def bitmap_parse(text: str, nmaskbits: int) -> tuple[int, int]:
    """bitmap_parse() of a C string: (err, mask).  Hex digits in comma- or
    blank-separated chunks of at most 32 bits, read from the end (the string ends at the
    first newline); a chunk of more than 8 digits, more chunks than ``nmaskbits`` needs,
    or a bit at or past ``nmaskbits`` is -EOVERFLOW, any other character -EINVAL."""
    nl = text.find("\n")
    if nl >= 0:
        text = text[:nl]
    chunks = (nmaskbits + 31) // 32
    mask = 0
    end = len(text) - 1
    chunk = 0
    while True:
        while end >= 0 and (text[end] in _SPACE or text[end] == ","):
            end -= 1
        if end < 0:
            break
        if chunk == chunks:
            return -errno.EOVERFLOW, 0
        val = 0
        for i in range(0, 32, 4):          # bitmap_get_x32_reverse()
            d = _digit_val(text[end]) if isxdigit(text[end]) else -1
            if d < 0:
                return -errno.EINVAL, 0
            val |= d << i
            end -= 1
            if end < 0 or text[end] in _SPACE or text[end] == ",":
                break
        else:   # eight digits: a ninth overflows, anything else is skipped
            if end >= 0 and isxdigit(text[end]):
                return -errno.EOVERFLOW, 0
            end -= 1
        mask |= val << (32 * chunk)
        chunk += 1
    if mask >> nmaskbits:
        return -errno.EOVERFLOW, 0
    return 0, mask


# --------------------------------------------------------------------------- lib/glob.c
def glob_to_regex(pat: str, multiline: bool = False) -> str:
    """glob_match() as a Python regex (``*``, ``?``, ``[a-z]``, ``[!x]``, ``\\``).

    A malformed class (no closing ``]``) makes its ``[`` a literal, as glob_match does.
    ``multiline``: wildcards never cross a newline (matching lines of a joined string).
    """
    anyc = "[^\\n]" if multiline else "."
    nl = "\\n" if multiline else ""
    out: list[str] = []
    i = 0
    n = len(pat)
    while i < n:
        c = pat[i]
        i += 1
        if c == "*":
            out.append(anyc + "*")
        elif c == "?":
            out.append(anyc)
        elif c == "[":
            cls = _glob_class(pat, i)
            if cls is None:
                out.append(re.escape("["))
                continue
            inverted, spans, i = cls
            if not spans:
                out.append(anyc if inverted else "(?!)")
            else:
                out.append(("[^" + nl if inverted else "[") + "".join(spans) + "]")
        elif c == "\\":
            if i < n:
                out.append(re.escape(pat[i]))
                i += 1
            else:
                out.append("(?!)")  # a trailing backslash only matches NUL: nothing
        else:
            out.append(re.escape(c))
    return "".join(out)


def _glob_class(pat: str, i: int) -> tuple[bool, list[str], int] | None:
    """Parse ``[...]`` after the ``[`` at ``i-1``: (inverted, regex spans, next index)."""
    n = len(pat)
    inverted = i < n and pat[i] == "!"
    j = i + 1 if inverted else i
    spans: list[str] = []
    if j >= n:
        return None
    a = pat[j]
    j += 1
    while True:
        b = a
        if j + 1 < n and pat[j] == "-" and pat[j + 1] != "]":
            b = pat[j + 1]
            j += 2
        elif j < n and pat[j] == "-" and j + 1 >= n:
            return None
        if a <= b:
            spans.append(re.escape(a) + ("-" + re.escape(b) if b != a else ""))
        if j >= n:
            return None
        a = pat[j]
        j += 1
        if a == "]":
            return inverted, spans, j


def glob_match(pat: str, text: str) -> bool:
    return re.fullmatch(glob_to_regex(pat), text, re.S) is not None


# ---------------------------------------------------------------- kernel/trace/trace.h
def is_good_name(name: str, hash_ok: bool = False) -> bool:
    """``__is_good_name``: a C identifier (``hash_ok``: '-' allowed too, system names)."""
    if not name:
        return False
    c = name[0]
    if not isalpha(c) and c != "_" and (not hash_ok or c != "-"):
        return False
    return all(isalnum(c) or c == "_" or (hash_ok and c == "-") for c in name[1:])


def is_good_system_name(name: str) -> bool:
    return is_good_name(name, hash_ok=True)


def sanitize_event_name(name: str) -> str:
    """trace.h's sanitize_event_name: it never touches the first character."""
    if not name:
        return name
    return name[0] + "".join("_" if c in ":.*" else c for c in name[1:])
