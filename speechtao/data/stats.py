"""Corpus statistics of a manifest: size, durations, speakers, engines, characters and words.

:func:`manifest_stats` returns plain JSON-able data; :func:`format_stats` renders it as text with a
histogram of durations. Speakers come from a ``speaker`` field (else ``voice``), engines from ``engine``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from .manifest import ManifestEntry

TOP_WORDS = 10
_STEPS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def _histogram(durations: list[float], max_bins: int = 10) -> dict:
    """Counts of durations in equal bins with a round width (0.5 s, 1 s, 2 s, 5 s, ...).

    Bins are half-open ``[lo, hi)`` except the last, which includes its upper edge.
    """
    lo_all, hi_all = min(durations), max(durations)
    for step in _STEPS:
        start = math.floor(lo_all / step) * step
        bins = max(1, math.ceil((hi_all - start) / step - 1e-9))
        if bins <= max_bins:
            break
    else:
        step = (hi_all - lo_all) / max_bins or 1.0
        start, bins = lo_all, max_bins
    counts = [0] * bins
    for d in durations:
        counts[min(bins - 1, int((d - start) / step + 1e-9))] += 1
    edges = [round(start + i * step, 6) for i in range(bins + 1)]
    return {"edges": edges, "counts": counts}


def manifest_stats(entries: list[ManifestEntry]) -> dict:
    """Statistics of ``entries`` (at least one) as JSON-able data; durations are the manifest's."""
    durations = [e.duration for e in entries]
    total = sum(durations)
    stats: dict = {
        "utterances": len(entries),
        "hours": total / 3600.0,
        "seconds": total,
        "duration": {
            "min": min(durations),
            "mean": total / len(durations),
            "median": statistics.median(durations),
            "max": max(durations),
        },
    }
    speaker_field = next((k for k in ("speaker", "voice") if any(k in e.extra for e in entries)), None)
    if speaker_field is None:
        stats["speakers"] = None
    else:
        names = {str(e.extra[speaker_field]) for e in entries if speaker_field in e.extra}
        stats["speakers"] = {
            "field": speaker_field,
            "count": len(names),
            "utterances_without": sum(speaker_field not in e.extra for e in entries),
        }
    if any("engine" in e.extra for e in entries):
        engines: dict[str, dict] = {}
        for e in entries:
            name = str(e.extra.get("engine", "(none)"))
            slot = engines.setdefault(name, {"utterances": 0, "hours": 0.0})
            slot["utterances"] += 1
            slot["hours"] += e.duration / 3600.0
        stats["engines"] = dict(sorted(engines.items()))
    else:
        stats["engines"] = None
    chars = Counter(c for e in entries for c in e.text)
    words = Counter(w for e in entries for w in e.text.lower().split())
    stats["characters"] = {"count": len(chars), "symbols": "".join(sorted(chars))}
    stats["words"] = {
        "total": sum(words.values()),
        "vocabulary": len(words),
        "top": [[w, n] for w, n in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_WORDS]],
    }
    stats["histogram"] = _histogram(durations)
    return stats


def format_stats(stats: dict, width: int = 40) -> str:
    """Human-readable report of :func:`manifest_stats` output, ending with a duration histogram."""
    d = stats["duration"]
    lines = [
        f"utterances  {stats['utterances']}",
        f"hours       {stats['hours']:.3f} ({stats['seconds']:.1f} s)",
        f"duration    min {d['min']:.2f} s, mean {d['mean']:.2f} s, median {d['median']:.2f} s, max {d['max']:.2f} s",
    ]
    sp = stats["speakers"]
    if sp is None:
        lines.append("speakers    unknown (no 'speaker' or 'voice' field)")
    else:
        note = f", {sp['utterances_without']} utterances without it" if sp["utterances_without"] else ""
        lines.append(f"speakers    {sp['count']} (field '{sp['field']}'{note})")
    if stats["engines"] is not None:
        parts = [f"{name} {v['utterances']} ({v['hours']:.3f} h)" for name, v in stats["engines"].items()]
        lines.append(f"engines     {', '.join(parts)}")
    ch, w = stats["characters"], stats["words"]
    lines.append(f"characters  {ch['count']}: {ch['symbols']!r}")
    lines.append(f"words       {w['total']} total, {w['vocabulary']} distinct")
    lines.append("top words   " + ", ".join(f"{word} {n}" for word, n in w["top"]))
    lines.append("durations (s)")
    hist = stats["histogram"]
    peak = max(hist["counts"])
    edges = hist["edges"]
    label_w = max(len(f"{e:g}") for e in edges)
    for i, n in enumerate(hist["counts"]):
        bar = "#" * (round(width * n / peak) if peak else 0)
        lines.append(f"  {edges[i]:>{label_w}g} - {edges[i + 1]:<{label_w}g} |{bar:<{width}}| {n}")
    return "\n".join(lines)
