"""Vectorised reader of the line-oriented text formats of logic circuits.

The SDD library's `.sdd` and `.vtree` files and c2d/d4's `.nnf` files share
one shape: comment lines starting with `c`, one header line (`sdd N`,
`vtree N`, `nnf v e n`), then one record per line: a one-letter keyword
followed by integers. Files reach 10^6 lines, so the bytes are tokenised
with numpy (no Python object per line): every record becomes (line number,
keyword, offset and count into one flat int64 array).
"""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pccompiler.errors import LoadError
from pccompiler.ir.nodes import chunk_bounds, concat_ranges

_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[list(b"0123456789")] = True
_BLANK = np.arange(256, dtype=np.uint8)
_BLANK[:33] = ord(" ")
_INT_WORD = re.compile(rb"-?[0-9]+")
_INT_BYTE = _DIGIT.copy()
_INT_BYTE[[ord(" "), ord("-")]] = True
_BYTES = 1 << 23                 # bytes per chunk of the plain reader's checks
_READ_MAX = 1 << 20              # files below this many bytes are read, not mapped


@dataclass
class Records:
    """The records of one file, in file order."""
    path: str
    header: str                 # the header keyword ("sdd", "vtree", "nnf")
    header_ints: np.ndarray     # its integers
    header_line: int
    lines: np.ndarray           # int64 [R] 1-based line numbers
    keys: np.ndarray            # uint8 [R] keyword letter of each record
    starts: np.ndarray          # int64 [R] offset of its first integer in `ints`
    counts: np.ndarray          # int64 [R] how many integers it has
    ints: np.ndarray            # int64 (int32: see read_records) [total] every integer,
                                # record by record

    def fail(self, record: int, message: str) -> LoadError:
        """A LoadError naming the file and the line of record `record`."""
        return LoadError(f"{self.path}:{int(self.lines[record])}: {message}")


def read_records(path: str | Path, header: str, keys: bytes, narrow: bool = False) -> Records:
    """Tokenise `path`; `header` is the expected header word, `keys` the
    allowed record letters. Raises LoadError naming the line of the first
    malformed record. narrow=True: the integers may come back as int32
    (the plain reader's, when every one fits): half the fresh memory, paid
    in page faults on a small VM (the 28M integers of a 10^6-node SDD)."""
    data = _file_data(path)
    buf = np.frombuffer(data, dtype=np.uint8)
    plain = _read_plain(data, buf, str(path), header, keys, narrow)
    if plain is not None:
        return plain
    space = buf <= 32                                   # whitespace and control bytes
    edge = np.flatnonzero(space[1:] != space[:-1]) + 1   # where tokens start or end
    edge = np.r_[0 if len(buf) and not space[0] else [], edge,
                 len(buf) if len(buf) and not space[-1] else []].astype(np.int64)
    tok_start, tok_end = edge[0::2], edge[1::2]
    newlines = np.flatnonzero(buf == 10)
    # 0-based line of each token: how many newlines precede it (each newline
    # is placed among the tokens, fewer searches than placing every token).
    tok_line = np.cumsum(np.bincount(np.searchsorted(tok_start, newlines),
                                     minlength=len(tok_start) + 1)[:len(tok_start)])
    first = np.r_[True, tok_line[1:] != tok_line[:-1]]   # the keyword of its line
    comment = first & (buf[tok_start] == ord("c")) & (tok_end - tok_start == 1)
    comment_line = np.zeros(len(newlines) + 1, dtype=bool)
    comment_line[tok_line[comment]] = True
    c_start = tok_start[comment]                        # comment lines: 'c' to the newline
    c_end = np.r_[newlines, len(buf)][np.searchsorted(newlines, c_start)]
    keep = ~comment_line[tok_line]
    tok_start, tok_end = tok_start[keep], tok_end[keep]
    tok_line, first = tok_line[keep], first[keep]
    where = str(path)
    if not len(tok_start):
        raise LoadError(f"{where}: empty file, expected a '{header}' header line")
    ints = _parse_ints(data, buf, tok_start[~first], tok_end[~first], tok_line[~first], where,
                       np.r_[tok_start[first], c_start], np.r_[tok_end[first], c_end])
    # Records: one per line with a keyword.
    rec_line = tok_line[first]
    rec_tok = np.flatnonzero(first)
    counts = np.diff(np.r_[rec_tok, len(tok_start)]) - 1
    starts = np.cumsum(counts) - counts
    klen = tok_end[first] - tok_start[first]
    kchar = buf[tok_start[first]]
    head = data[tok_start[0]:tok_end[0]].decode(errors="replace")
    if head != header:
        raise LoadError(f"{where}:{int(rec_line[0]) + 1}: expected the header "
                        f"'{header} ...', got {head!r}")
    allowed = np.zeros(256, dtype=bool)
    allowed[list(keys)] = True
    good = allowed[kchar] & (klen == 1)
    good[0] = True
    if not good.all():
        r = int(np.argmin(good))
        word = data[tok_start[first][r]:tok_end[first][r]].decode(errors="replace")
        raise LoadError(f"{where}:{int(rec_line[r]) + 1}: unknown record {word!r} "
                        f"(expected one of {', '.join(chr(k) for k in keys)})")
    return Records(path=where, header=head, header_ints=ints[starts[0]:starts[0] + counts[0]],
                   header_line=int(rec_line[0]) + 1, lines=rec_line[1:] + 1,
                   keys=kchar[1:], starts=starts[1:], counts=counts[1:], ints=ints)


def _file_data(path: str | Path) -> bytes | mmap.mmap:
    """The file's bytes: mapped read-only where the system can map it (the
    pages come from the page cache, where reading a 200 MB file copied it
    into 200 MB of fresh memory, paid in page faults on a small VM; the
    readers only slice it and view it through numpy), else read."""
    try:
        with open(path, "rb") as f:
            try:
                if os.fstat(f.fileno()).st_size < _READ_MAX:
                    return f.read()                # (a map and its unmap cost more)
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):          # empty, a pipe, a system without mmap
                return f.read()
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_plain(data: bytes | mmap.mmap, buf: np.ndarray, where: str, header: str,
                keys: bytes, narrow: bool = False) -> Records | None:
    """read_records for the plain layout that the SDD library and c2d write
    (lines ending in \\n, one space between tokens, one-letter keywords),
    in a few passes over the bytes with no per-token arrays; None when the
    file is laid out otherwise or malformed (the general reader then reads
    it or names the bad line)."""
    n = len(buf)
    if n == 0:
        return None
    nl = np.flatnonzero(buf == 10) if n <= _BYTES else np.concatenate(
        [np.flatnonzero(buf[a:b] == 10) + a for a, b in chunk_bounds(n, _BYTES)])
    ends = nl if len(nl) and nl[-1] == n - 1 else np.append(nl, n)
    starts = np.empty(len(ends), dtype=np.int64)      # (np.r_ costs 4 us a call: small files)
    starts[0] = 0
    np.add(ends[:-1], 1, out=starts[1:])
    if (ends <= starts).any():
        return None                                      # an empty line
    one_letter = (starts + 1 == ends) | (buf[np.minimum(starts + 1, n - 1)] == 32)
    comment = (buf[starts] == ord("c")) & one_letter
    if comment.all():
        return None
    h = int(np.argmin(comment))                          # the header line
    words = data[starts[h]:ends[h]].split(b" ")
    if words[0] != header.encode() or not all(_INT_WORD.fullmatch(w) for w in words[1:]):
        return None
    rec = np.flatnonzero(~comment[h + 1:]) + h + 1
    allowed = np.zeros(256, dtype=bool)
    allowed[list(keys)] = True
    if not (one_letter[rec] & allowed[buf[starts[rec]]]).all():
        return None
    # Bytes to blank before reading integers: comment lines, the header
    # word, the keywords (ascending). The bytes are read in chunks cut at
    # line ends: each chunk copied (stays in cache), blanked, checked and
    # parsed, its integers written into one array (no 200 MB copy of the
    # file; unused capacity of `ints` is never touched, so costs nothing).
    skip = np.flatnonzero(comment)
    blank = np.concatenate((concat_ranges(starts[skip], ends[skip] - starts[skip]),
                            np.arange(starts[h], starts[h] + len(words[0])), starts[rec]))
    # Spaces per line (a uint16 sum is far faster where no line can overflow it).
    acc = np.uint16 if int((ends - starts).max()) < 2 ** 16 else np.int64
    per_line = np.zeros(len(starts), dtype=acc)
    ints = np.empty(n // 2 + 1, dtype=np.int32 if narrow else np.int64)   # >= 2 bytes each
    small = np.iinfo(np.int32)
    pos = 0
    cuts = [n] if n <= _BYTES else np.unique(np.r_[np.minimum(
        ends[np.searchsorted(ends, np.arange(_BYTES, n, _BYTES))] + 1, n), n]).tolist()
    if len(cuts) > 1 and (blank[1:] < blank[:-1]).any():   # chunk ends: after a newline
        blank.sort()                                     # (ascending already when comments lead)
    for a, b in zip([0, *cuts[:-1]], cuts):
        # The chunk plus one space: np.fromstring's text parser reads a
        # token until a byte that cannot continue it, and a file whose last
        # line has no newline would otherwise end the buffer inside a token
        # (seq_fun's .sdd and .vtree do): it read past the copy's end.
        spaced = np.empty(b - a + 1, dtype=np.uint8)
        spaced[-1] = 32
        ch = spaced[:-1]
        ch[:] = buf[a:b]
        if len(cuts) > 1:
            i0, i1 = np.searchsorted(blank, [a, b])
            ch[blank[i0:i1] - a] = 32
        else:
            ch[blank] = 32
        m = np.flatnonzero(ch == ord("-"))
        digits = np.count_nonzero(ch >= 48) - np.count_nonzero(ch > 57)   # 0-9 (no temporary:
                                                 # a third of the time of (ch - 48) < 10)
        newlines = len(nl) if len(cuts) == 1 else \
            int(np.searchsorted(nl, b) - np.searchsorted(nl, a))   # (blanks keep them:
        if digits + np.count_nonzero(ch == 32) + len(m) + newlines != b - a:  # no pass for them)
            return None                                  # a byte other than 0-9, ' ', '-', \n
        if len(m) and (m[0] == 0 or m[-1] + 1 >= len(ch) or not (
                _DIGIT[ch[m + 1]] & (ch[m - 1] == 32)).all()):
            return None                                  # a '-' not opening an integer
        _spaces_per_line(buf, a, b, starts, per_line)
        if not digits:
            continue                                     # (fromstring of blanks gives [0])
        vals = np.fromstring(spaced, dtype=np.int64, sep=" ")
        if pos + len(vals) > len(ints):
            return None
        if narrow and (vals.min() < small.min or vals.max() > small.max):
            return _read_plain(data, buf, where, header, keys)   # too wide: int64 throughout
        ints[pos:pos + len(vals)] = vals
        pos += len(vals)
    ints = ints[:pos]
    counts = np.empty(len(rec) + 1, dtype=np.int64)    # the header's line, then the records'
    counts[0] = per_line[h]
    counts[1:] = per_line[rec]
    if int(counts.sum()) != len(ints):
        return None                                      # extra spaces somewhere
    first_int = np.cumsum(counts) - counts               # the header's integers come first
    return Records(path=where, header=header, header_ints=ints[:counts[0]],
                   header_line=h + 1, lines=rec + 1, keys=buf[starts[rec]],
                   starts=first_int[1:], counts=counts[1:], ints=ints)


def _spaces_per_line(buf: np.ndarray, a: int, b: int, starts: np.ndarray,
                     per_line: np.ndarray) -> None:
    """Adds to per_line the spaces of buf[a:b], line by line (lines start
    at `starts`, starts[0] = 0): a line may begin in an earlier chunk."""
    spaces = (buf[a:b] == 32).view(np.uint8)
    if a == 0 and b == len(buf):                         # the whole file: every line
        per_line += np.add.reduceat(spaces, starts, dtype=per_line.dtype)
        return
    i0, i1 = np.searchsorted(starts, [a, b])
    if i0 == i1:                                         # inside one line begun earlier
        per_line[i0 - 1] += np.count_nonzero(spaces)
        return
    cut = starts[i0:i1] - a
    if cut[0] > 0:
        per_line[i0 - 1] += np.count_nonzero(spaces[:cut[0]])
    per_line[i0:i1] += np.add.reduceat(spaces, cut, dtype=per_line.dtype)


def _parse_ints(data: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                lines: np.ndarray, where: str, other_starts: np.ndarray,
                other_ends: np.ndarray) -> np.ndarray:
    """The integer tokens [starts, ends) of buf as int64, checked to be
    digits with an optional leading '-' (numpy's C parser reads them).
    Every other byte lies in whitespace or in a range [other_starts,
    other_ends) (keywords, comment lines). One pass over the bytes checks
    them all; the byte-per-token check runs only to name a bad token."""
    if not len(starts):
        return np.zeros(0, dtype=np.int64)
    chars = _BLANK[buf]                         # whitespace and control bytes -> ' '
    chars[concat_ranges(other_starts, other_ends - other_starts)] = ord(" ")
    minus = np.flatnonzero(chars == ord("-"))
    nxt = chars[np.minimum(minus + 1, len(chars) - 1)]
    ok_minus = (minus + 1 < len(chars)) & _DIGIT[nxt] & ((minus == 0) | (chars[minus - 1] == 32))
    if _INT_BYTE[chars].all() and ok_minus.all():
        ints = np.fromstring(chars.tobytes(), dtype=np.int64, sep=" ")
        if len(ints) == len(starts):
            return ints
    return _parse_ints_checked(data, buf, starts, ends, lines, where)


def _parse_ints_checked(data: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                        lines: np.ndarray, where: str) -> np.ndarray:
    """_parse_ints byte by byte within the tokens: slower, and names the
    first token that is not an integer."""
    delta = np.zeros(len(buf) + 1, dtype=np.int8)
    delta[starts], delta[ends] = 1, -1
    inside = np.cumsum(delta[:-1], dtype=np.int8).astype(bool)
    minus = buf == ord("-")
    bad = inside & ((buf - np.uint8(48)) > 9) & ~minus
    mpos = np.flatnonzero(inside & minus)
    nxt = np.minimum(mpos + 1, len(buf) - 1)
    bad_minus = mpos[(delta[mpos] != 1) | ~_DIGIT[buf[nxt]] | (mpos + 1 >= len(buf))]
    if bad.any() or len(bad_minus):
        found = ([int(np.argmax(bad))] if bad.any() else []) + \
            ([int(bad_minus[0])] if len(bad_minus) else [])
        pos = min(found)
        t = int(np.searchsorted(starts, pos, side="right")) - 1
        text = data[starts[t]:ends[t]].decode(errors="replace")
        raise LoadError(f"{where}:{int(lines[t]) + 1}: {text!r} is not an integer")
    chars = np.where(inside, buf, np.uint8(ord(" "))).astype(np.uint8)
    ints = np.fromstring(chars.tobytes(), dtype=np.int64, sep=" ")
    if len(ints) != len(starts):
        raise LoadError(f"{where}: could not read its integers")
    return ints


def check_counts(rec: Records, key: str, expected: np.ndarray | int, what: str) -> None:
    """Every record with keyword `key` has `expected` integers (per record or one number)."""
    sel = np.flatnonzero(rec.keys == ord(key))
    want = np.broadcast_to(np.asarray(expected), sel.shape)
    bad = rec.counts[sel] != want
    if bad.any():
        r = sel[np.argmax(bad)]
        raise rec.fail(r, f"a '{key}' record needs {int(want[np.argmax(bad)])} integers "
                          f"({what}), got {int(rec.counts[r])}")


def counts_as_expected(rec: Records, per_key: dict[str, int], at: np.ndarray | None = None,
                       extra: np.ndarray | None = None) -> bool:
    """Whether every record has per_key[its keyword] integers, plus
    extra[i] at the records at[i]: one comparison of all the records,
    where a check_counts per keyword costs about six numpy calls (a small
    file's import pays such fixed costs, not its few thousand records).
    False says only that some count is off: the caller then runs its
    check_counts in order, which name the line."""
    table = np.zeros(256, dtype=np.int64)
    for key, count in per_key.items():
        table[ord(key)] = count
    want = table[rec.keys]
    if at is not None:
        want[at] += extra
    return bool((want == rec.counts).all())


def column(rec: Records, sel: np.ndarray, j: int) -> np.ndarray:
    """The j-th integer of the records `sel`."""
    return rec.ints[rec.starts[sel] + j]
