"""``colo-replay qemu-releases``: the behaviour rows A..K, the releases of each, what changed,
the colo-compare properties and defaults, every switch, and the KVM-COLO availability windows
(text, or ``--json``).  With ``RELEASE`` arguments: the row each maps to (as ``--qemu`` would)."""

from __future__ import annotations

import json

import click

from .options import bad_input, epilog


@click.command("qemu-releases", epilog=epilog())
@click.argument("release", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Write the table as JSON (schema colo-replay/qemu-releases/1).")
def qemu_releases(release, as_json):
    """The QEMU releases colo-replay models: eleven behaviour rows (A = 4.1.0 .. K = 7.2.15+,
    8.2.8+, 9.0.4+, 9.1.2+, 9.2 onwards), their releases, switches and properties.

    With RELEASE arguments (any --qemu value, including auto and row:X): the row each maps to.
    """
    from ..engine.releases import NEWEST_VERIFIED, ROW_PIN_PREFIX, kvm_colo_windows, release_table

    if release:
        from ..offline.settings import Settings
        out = []
        with bad_input():
            for r in release:
                rel = Settings(qemu=r).release
                out.append({**rel.as_dict(), "profile": rel.profile.name, "how": rel.how,
                            "warnings": list(rel.warnings), "kvm_colo": rel.kvm_colo})
        if as_json:
            click.echo(json.dumps(out, indent=2))
            return
        for given, r in zip(release, out):
            asked = f", asked {r['binary']}" if r.get("binary") else ""
            click.echo(f"{given}: row {r['row']} (profile {r['profile']}; {r['how']}{asked})")
            for w in r["warnings"]:
                click.echo(f"  warning: {w}")
            if r["kvm_colo"]:
                click.echo(f"  KVM COLO: {r['kvm_colo']}")
        return
    table = release_table()
    windows = kvm_colo_windows()
    newest = ".".join(map(str, NEWEST_VERIFIED))
    if as_json:
        click.echo(json.dumps({"schema": "colo-replay/qemu-releases/1", "newest_verified": newest,
                               "row_pin": f"{ROW_PIN_PREFIX}X", "rows": table, "kvm_colo_broken": windows},
                              indent=2))
        return
    click.echo(f"QEMU colo-compare behaviour rows (verified to {newest}; newer releases are taken as row K "
               f"with a warning).  --qemu takes a release, a package version, the --version line, auto, "
               f"or {ROW_PIN_PREFIX}X.")
    for r in table:
        d = r["defaults"]
        props = ", ".join(r["properties"]) or "none (fixed values)"
        click.echo("")
        click.echo(f"row {r['row']}  profile {r['profile']:<6} releases {r['releases']}")
        click.echo(f"  changed:    {r['changes']}")
        click.echo(f"  properties: {props}; defaults compare_timeout {d['compare_timeout']} ms, expired_scan_cycle "
                   f"{d['expired_scan_cycle']} ms, max_queue_size {d['max_queue_size']}, x-checkpoint-delay "
                   f"{d['x-checkpoint-delay']} ms")
    click.echo("")
    names = list(table[0]["switches"])
    width = max(map(len, names))
    click.echo("switch".ljust(width) + "  " + " ".join(r["row"].center(7) for r in table))
    for name in names:
        cells = []
        for r in table:
            v = r["switches"][name]
            if isinstance(v, list):     # configurable: the properties' initials
                v = "+".join("".join(w[0] for w in x.split("_")) for x in v) or "-"
            v = str(v)
            cells.append(v[:7].center(7))
        click.echo(name.ljust(width) + "  " + " ".join(cells))
    click.echo("")
    click.echo("KVM COLO cannot run (colo-compare itself does; the summary warns, modelled checkpoint options are "
               "refused):")
    for w in windows:
        click.echo(f"  {w['releases']}: {w['what']}")
