"""Per-sample values of the retrieval metrics, for paired tests (compare, gate).

Matched by (text_index, image_id) for t2i and image_id for i2t. R@k = hit (rank <= k); mean / median rank = rank;
rsum = the sum over both directions of each query's hits at every k (two strata: t2i and i2t, each averaged over
its own queries).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mmeval.metrics.stats.paired import Statistic
from mmeval.reporting.sample_values import PairedValues, image_id, no_test, rows_of, single


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    return ranking_paired_values(metric, a, b, names, ("t2i", "i2t"), "image_id", cluster=image_id)


def ranking_paired_values(metric: str, a: dict, b: dict, names: list[str], directions: tuple[str, str],
                          item: str, cluster: Callable[[dict], Any] | None = None) -> PairedValues:
    """R@k, mean / median rank and rsum of any text <-> gallery retrieval (images, videos, clips):
    `directions` = (text -> item, item -> text) prefixes, rows keyed by `item` (e.g. "video_id"); with `cluster`,
    recall and rsum pair by that unit."""
    text_to, to_text = directions
    recall = re.compile(rf"({text_to}|{to_text})_R@(\d+)")
    rank = re.compile(rf"({text_to}|{to_text})_(mean|median)_rank")
    keys = {text_to: lambda r: (r.get("text_index"), r.get(item)), to_text: lambda r: r.get(item)}
    if metric == "rsum":
        ks = {d: [int(m.group(2)) for n in names if (m := recall.fullmatch(n)) and m.group(1) == d]
              for d in directions}
        out, labels = PairedValues(), []
        for direction, k_list in ks.items():
            ra, rb = rows_of(a, direction), rows_of(b, direction)
            if ra is None or rb is None:
                return no_test(f"no per-sample {direction} ranks")
            part = single(ra, rb, keys[direction], lambda r, k_list=k_list: sum(_hit(r, k) for k in k_list),
                          cluster=cluster)
            if part.reason:
                return part
            out.strata += part.strata
            labels.append(part.clusters)
            out.n_a, out.n_b = out.n_a + part.n_a, out.n_b + part.n_b
        if all(part is not None for part in labels):  # an item's captions and its own query move together
            out.clusters, out.unit = [c for part in labels for c in part], getattr(cluster, "unit", "clusters")
        return out
    match = recall.fullmatch(metric) or rank.fullmatch(metric)
    if not match:
        return no_test("no per-sample values for this metric")
    direction = match.group(1)
    ra, rb = rows_of(a, direction), rows_of(b, direction)
    if ra is None or rb is None:
        return no_test(f"no per-sample {direction} ranks")
    if metric.endswith("_rank"):
        stat: Statistic = "median" if match.group(2) == "median" else "mean"
        return single(ra, rb, keys[direction], lambda r: r["rank"], statistic=stat)
    k = int(match.group(2))
    return single(ra, rb, keys[direction], lambda r: float(_hit(r, k)), cluster=cluster)


def _hit(row: dict, k: int) -> bool:
    """A recall@k hit: the `topk` tie policy stores torch.topk's hits per k; otherwise rank <= k."""
    hits = row.get("hits")
    return bool(hits[str(k)]) if hits is not None and str(k) in hits else row["rank"] <= k
