"""Generated request bodies: sizes drawn from a seeded distribution, filled with a fixed pattern.

The engine never samples on the hot path: each generated variant gets a pool of sizes drawn here
once (in the parent, from --seed), every worker pre-encodes one request per size, and the native
picker chooses among them uniformly. So the sizes sent follow the pool, and the pool follows the
distribution; both are reproducible from the seed.

Spec (YAML/JSON mapping; `min`/`max` truncate any distribution by resampling, so a truncated
distribution keeps its shape below the cap instead of piling up at it):
    {dist: fixed, bytes: 1024}
    {dist: uniform, min: 100, max: 2000}
    {dist: lognormal, mu: 7.0, sigma: 1.2, max: 65536}
    {dist: poisson, lambda: 300}
    {dist: mixture, max: 32768, components: [{weight: 0.72, dist: poisson, lambda: 300},
                                             {weight: 0.28, dist: lognormal, mu: 8, sigma: 1}]}
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from fastload.errors import UsageError

DEFAULT_POOL = 1024
MAX_POOL = 65536
MAX_BODY = 1 << 30  # 1 GiB: a request bigger than that is a typo, not a test
# Resampling attempts for a truncated draw before giving up: a cap that rejects nearly
# everything is a bad spec, reported instead of looping.
_MAX_REJECTS = 1000
_FILLER = b"abcdefghijklmnopqrstuvwxyz0123456789" * 32

_PARAMS = {
    "fixed": {"bytes"},
    "uniform": {"min", "max"},
    "lognormal": {"mu", "sigma", "min", "max"},
    "poisson": {"lambda", "min", "max"},
    "mixture": {"components", "min", "max"},
}


@dataclass(frozen=True)
class SizeDist:
    kind: str
    params: tuple[tuple[str, float], ...] = ()
    lo: int = 0
    hi: int = MAX_BODY
    components: tuple[tuple[float, SizeDist], ...] = ()  # (probability, dist) for mixtures

    def param(self, name: str) -> float:
        return dict(self.params)[name]

    def describe(self) -> dict:
        """The spec as given, for the result document's config."""
        out: dict = {"dist": self.kind, **dict(self.params)}
        if self.kind != "fixed":
            if self.lo:
                out["min"] = self.lo
            if self.hi != MAX_BODY:
                out["max"] = self.hi
        if self.components:
            out["components"] = [{"weight": w, **d.describe()} for w, d in self.components]
        return out


def _number(spec: dict, key: str, where: str, *, integer: bool = False, positive: bool = False) -> float:
    v = spec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise UsageError(f"{where}: {key!r} must be a number, not {v!r}")
    if integer and v != int(v):
        raise UsageError(f"{where}: {key!r} must be a whole number of bytes, not {v!r}")
    if v < 0 or (positive and v <= 0):
        raise UsageError(f"{where}: {key!r} must be {'> 0' if positive else '>= 0'}, not {v!r}")
    return v


def parse_dist(spec: object, where: str = "body_size") -> SizeDist:
    """A validated distribution; an int is shorthand for {dist: fixed, bytes: N}."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"dist": "fixed", "bytes": spec}
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: expected a mapping like {{dist: lognormal, mu: 7, sigma: 1}}, not {spec!r}")
    kind = spec.get("dist")
    if kind not in _PARAMS:
        raise UsageError(f"{where}: dist {kind!r} is not one of {', '.join(_PARAMS)}")
    unknown = set(spec) - _PARAMS[kind] - {"dist", "weight"}
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} for dist {kind}")
    lo = int(_number(spec, "min", where, integer=True)) if "min" in spec else 0
    hi = int(_number(spec, "max", where, integer=True)) if "max" in spec else MAX_BODY
    if hi > MAX_BODY:
        raise UsageError(f"{where}: max {hi} is above the limit of {MAX_BODY} bytes")
    if lo > hi:
        raise UsageError(f"{where}: min {lo} is greater than max {hi}")
    if kind == "fixed":
        n = int(_number(spec, "bytes", where, integer=True))
        if n > MAX_BODY:
            raise UsageError(f"{where}: {n} bytes is above the limit of {MAX_BODY}")
        return SizeDist("fixed", (("bytes", n),), n, n)
    if kind == "uniform":
        if "min" not in spec or "max" not in spec:
            raise UsageError(f"{where}: uniform needs min and max")
        return SizeDist("uniform", (), lo, hi)
    if kind == "lognormal":
        for key in ("mu", "sigma"):
            if key not in spec:
                raise UsageError(f"{where}: lognormal needs mu and sigma (of the log of the size)")
        mu = spec["mu"]
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu) or abs(mu) > 40:
            raise UsageError(f"{where}: 'mu' must be a number between -40 and 40, not {mu!r}")
        sigma = _number(spec, "sigma", where)
        if sigma > 10:
            raise UsageError(f"{where}: 'sigma' {sigma} is above 10")
        return SizeDist("lognormal", (("mu", float(mu)), ("sigma", float(sigma))), lo, hi)
    if kind == "poisson":
        if "lambda" not in spec:
            raise UsageError(f"{where}: poisson needs lambda (the mean size)")
        lam = _number(spec, "lambda", where, positive=True)
        if lam > MAX_BODY:
            raise UsageError(f"{where}: lambda {lam} is above {MAX_BODY}")
        return SizeDist("poisson", (("lambda", float(lam)),), lo, hi)
    comps = spec.get("components")
    if not isinstance(comps, list) or not comps:
        raise UsageError(f"{where}: mixture needs a non-empty list of components")
    weights = []
    parsed = []
    for i, c in enumerate(comps):
        cw = f"{where} component {i + 1}"
        if not isinstance(c, dict) or "weight" not in c:
            raise UsageError(f"{cw}: needs a weight and a dist")
        w = _number(c, "weight", cw)
        if c.get("dist") == "mixture":
            raise UsageError(f"{cw}: a mixture cannot contain a mixture")
        parsed.append(parse_dist(c, cw))
        weights.append(w)
    total = sum(weights)
    if total <= 0:
        raise UsageError(f"{where}: mixture weights add up to 0")
    return SizeDist("mixture", (), lo, hi, tuple((w / total, d) for w, d in zip(weights, parsed, strict=True)))


def poisson(lam: float, rng: random.Random) -> int:
    """One Poisson(lam) draw: multiplication for small lam, PTRS (Hörmann 1993, as NumPy) above."""
    if lam < 10:
        limit = math.exp(-lam)
        k, prod = 0, rng.random()
        while prod > limit:
            k += 1
            prod *= rng.random()
        return k
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b) <= -lam + k * loglam - math.lgamma(k + 1):
            return k


def _draw_raw(d: SizeDist, rng: random.Random) -> int:
    if d.kind == "fixed":
        return d.lo
    if d.kind == "uniform":
        return rng.randint(d.lo, d.hi)
    if d.kind == "lognormal":
        x = rng.lognormvariate(d.param("mu"), d.param("sigma"))
        return int(min(x, 2.0 * MAX_BODY))
    if d.kind == "poisson":
        return poisson(d.param("lambda"), rng)
    u = rng.random()
    acc = 0.0
    for w, comp in d.components:
        acc += w
        if u < acc:
            return draw(comp, rng)
    return draw(d.components[-1][1], rng)


def draw(d: SizeDist, rng: random.Random) -> int:
    """One size in [d.lo, d.hi]: out-of-range draws are redrawn (a truncated distribution)."""
    for _ in range(_MAX_REJECTS):
        n = _draw_raw(d, rng)
        if d.lo <= n <= d.hi:
            return n
    raise UsageError(f"body size {d.describe()}: min/max reject nearly every draw; widen them")


def sample(d: SizeDist, n: int, seed: int | str) -> list[int]:
    """n sizes, reproducible: the same (d, n, seed) gives the same list on every machine."""
    rng = random.Random(f"fastload-body:{seed}")  # str seeds hash with SHA-512, not PYTHONHASHSEED
    return [draw(d, rng) for _ in range(n)]


def filler(n: int) -> bytes:
    """n bytes of printable filler (compressible, like text: honest for text APIs)."""
    reps = n // len(_FILLER) + 1
    return (_FILLER * reps)[:n]
