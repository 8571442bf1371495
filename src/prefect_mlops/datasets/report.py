"""A version as markdown for the Prefect UI: its facts, statistics of its tabular files, and
its lineage as a mermaid graph (parents → version → consuming runs)."""

from __future__ import annotations

from prefect_mlops.datasets.entities import Lineage, VersionInfo


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _node(v: VersionInfo) -> str:
    return f"v_{v.version_id[:12]}"


def lineage_mermaid(lineage: Lineage) -> str:
    """``graph LR`` of ancestors → the version → runs; producing runs point at the version."""
    v = lineage.version
    lines = ["graph LR"]
    lines.append(f'  {_node(v)}["{v.dataset} v{v.number}<br/>{v.version_id[:12]}"]')
    style = [f"  style {_node(v)} stroke-width:3px"]
    known = {v.version_id: v}
    for a in lineage.ancestors:
        known[a.version_id] = a
        lines.append(f'  {_node(a)}["{a.dataset} v{a.number}<br/>{a.version_id[:12]}"]')
    for info in known.values():
        for parent in info.parents:
            if parent in known:
                lines.append(f"  {_node(known[parent])} --> {_node(info)}")
    for link in lineage.produced_by:
        lines.append(f'  r_{link.run_id[:12]}(["run {link.run_id[:8]}"]) -->|produced| {_node(v)}')
    for link in lineage.consumed_by:
        lines.append(f'  {_node(v)} -->|read by| r_{link.run_id[:12]}(["run {link.run_id[:8]}"])')
    return "\n".join(lines + style)


def version_markdown(lineage: Lineage, action: str) -> str:
    """The report of a version a flow run ``action`` (``created`` or ``read``)."""
    v = lineage.version
    out = [
        f"# Dataset `{v.dataset}` v{v.number} ({action})",
        "",
        "| | |",
        "|---|---|",
        f"| version | `{v.version_id}` |",
        f"| files | {v.file_count} |",
        f"| size | {_size(v.total_size)} |",
        f"| parents | {', '.join(f'`{p[:12]}`' for p in v.parents) or '-'} |",
        f"| aliases | {', '.join(v.aliases) or '-'} |",
    ]
    if v.message:
        out.append(f"| message | {v.message} |")
    if v.splits:
        out.append(f"| splits | {', '.join(f'{k}: `{p}`' for k, p in v.splits.items())} |")
    tabular = [(p, s) for p, s in v.stats.items() if isinstance(s, dict) and "rows" in s]
    if tabular:
        out += ["", "## Tables", "", "| file | rows | columns |", "|---|---:|---|"]
        for path, s in tabular[:50]:
            cols = ", ".join(f"{c['name']} ({c['type']})" for c in s.get("columns", [])[:12])
            out.append(f"| {path} | {s['rows']} | {cols} |")
    out += ["", "## Lineage", "", "```mermaid", lineage_mermaid(lineage), "```", ""]
    return "\n".join(out)
