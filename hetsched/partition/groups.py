"""The PE groups a stage may use: single PEs and, with replication, every set of two or more PEs
of one kind (contract section 1). Shared by every planner."""

from __future__ import annotations

from itertools import combinations

from ..profile import Profile
from .cost import PlanError, Stage


def allowed_pes(profile: Profile, pes: list[str] | None) -> list[str]:
    if pes is None:
        return list(profile.pes)
    unknown = [p for p in pes if p not in profile.pes]
    if unknown:
        raise PlanError(f"PE(s) {unknown} are not in the profile (it has {', '.join(profile.pes)})")
    if not pes:
        raise PlanError("the PE subset is empty")
    return [p for p in profile.pes if p in pes]  # profile order, for determinism


def stage_groups(profile: Profile, pes: list[str], replication: bool) -> list[tuple[str, ...]]:
    groups = [(p,) for p in pes]
    if replication:
        by_kind: dict[str, list[str]] = {}
        for p in pes:
            by_kind.setdefault(profile.pes[p].kind, []).append(p)
        for members in by_kind.values():
            for k in range(2, len(members) + 1):
                groups.extend(combinations(members, k))
    return groups


def pe_sets(profile: Profile, pes: list[str]) -> list[list[str]]:
    """The PE sets a planner solves over separately so that contention stays exact: contention
    makes a PE's cost depend on the set U of PEs the whole plan uses, so each set of the PEs that
    contention involves, with every other PE of `pes`, is one problem priced with its own
    factors (2^c sets for c such PEs; one set, `pes` itself, when the profile has none). A plan
    over part of a set is priced there no lower than its own cost (contention is >= 0), so the
    best over all sets, re-priced by `cost.evaluate`, is the best plan."""
    involved = [p for p in profile.contended() if p in pes]
    free = [p for p in pes if p not in involved]
    out = []
    for mask in range(1 << len(involved)):
        chosen = {p for b, p in enumerate(involved) if mask >> b & 1}
        subset = [p for p in pes if p in chosen or p in free]
        if subset:
            out.append(subset)
    return out[::-1]    # the whole set first


def check_feasible(profile: Profile, pes: list[str]) -> None:
    """Every layer must run on at least one allowed PE; else one line naming the first that cannot."""
    for i, layer in enumerate(profile.layers):
        if all(layer.cost_ms.get(p) is None for p in pes):
            raise PlanError(f"layer {i} '{layer.name}' ({layer.op}) cannot run on any allowed PE "
                            f"({', '.join(pes)})")


def stages_from_path(groups: list[tuple[str, ...]], path: list[int]) -> list[Stage]:
    """Stages from the group index of every layer (a run of equal indices is one stage)."""
    stages, start = [], 0
    for i in range(1, len(path) + 1):
        if i == len(path) or path[i] != path[start]:
            stages.append(Stage(tuple(groups[path[start]]), start, i - 1))
            start = i
    return stages
