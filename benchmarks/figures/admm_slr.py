"""Figures of admm_slr*.json: ADMM and SLR against magnitude pruning."""

import statistics

from figures import NOT_RUN, figure, load, num, seeds_text, table

# -- admm_slr.json / admm_slr_paper.json ---------------------------------

def _runs(name, setting, method):
    return [r for r in load(name)["runs"] if r["setting"] == setting and r["method"] == method]


def _deltas(rows, key):
    return [100 * (r[f"{key}_accuracy"] - r["dense_accuracy"]) for r in rows]


@figure("admm_slr.delta")
def admm_slr_delta(name, setting, method, key, which="mean"):
    """Accuracy − dense in points: `which` "mean" over seeds or a seed."""
    rows = _runs(name, setting, method)
    if which != "mean":
        rows = [r for r in rows if r["seed"] == int(which)]
    if not rows:
        return NOT_RUN
    return num(statistics.mean(_deltas(rows, key)), sign=True)


@figure("admm_slr.lead")
def admm_slr_lead(name, setting, a, b, key):
    """How far method `a` is ahead of `b` (mean over seeds, points)."""
    lead = statistics.mean(_deltas(_runs(name, setting, a), key)) - statistics.mean(
        _deltas(_runs(name, setting, b), key))
    return f"{num(abs(lead))} pt {'ahead of' if lead >= 0 else 'behind'}"


@figure("admm_slr.seed_gaps")
def admm_slr_seed_gaps(setting, a, b, key):
    """Per seed, `a` − `b` in points, and on how many seeds `a` is ahead."""
    rows_b = {r["seed"]: r for r in _runs("admm_slr", setting, b)}
    gaps = [100 * (r[f"{key}_accuracy"] - rows_b[r["seed"]][f"{key}_accuracy"])
            for r in sorted(_runs("admm_slr", setting, a), key=lambda r: r["seed"]) if r["seed"] in rows_b]
    ahead = sum(g > 0 for g in gaps)
    return f"on {ahead} of {len(gaps)} seeds ({', '.join(num(g, sign=True) for g in gaps)} pt)"


@figure("admm_slr.dense")
def admm_slr_dense(name="admm_slr"):
    seeds = {r["seed"]: r["dense_accuracy"] for r in load(name)["runs"]}
    return " / ".join(num(100 * seeds[s]) for s in sorted(seeds)) + "%"


USER_METHODS = ["gmp", "tfmot", "admm", "slr", "admm_paper", "slr_paper"]
SETTING_NAMES = {"90u": "90% per layer", "986u": "98.6% per layer", "71x": "71.2x per layer (ADMM recipe)",
                 "71g": "98.6% global", "100g": "99% global"}


def _cell(rows, key):
    deltas = _deltas(rows, key)
    text = num(statistics.mean(deltas), sign=True)
    return text + (f" ± {num(statistics.stdev(deltas))}" if len(deltas) > 1 else "")


@figure("admm_slr.table")
def admm_slr_table(*settings):
    """Mean (± std over seeds) of accuracy − dense, per setting and method."""
    rows = []  # [setting key, shown setting, ...] until the end
    for setting in settings:
        for method in USER_METHODS:
            runs = _runs("admm_slr", setting, method)
            if runs:
                first = not any(r[0] == setting for r in rows)
                rows.append([setting, SETTING_NAMES[setting] if first else "", method, len(runs),
                             _cell(runs, "retrain_free"), _cell(runs, "retrained")])
    rows = [row[1:] for row in rows]
    return table(["setting", "method", "seeds", "retrain-free", "retrained"], rows)


@figure("admm_slr.seed_counts")
def admm_slr_seed_counts(name="admm_slr"):
    """How many seeds each setting has, e.g. "3 seeds (90u, 986u), one seed (71x)"."""
    counts = {}
    for r in load(name)["runs"]:
        counts.setdefault(r["setting"], {}).setdefault(r["method"], set()).add(r["seed"])
    by_n = {}
    for setting, methods in counts.items():
        n = max(len(s) for s in methods.values())
        by_n.setdefault(n, []).append(setting)
    return ", ".join(f"{seeds_text(n)} ({', '.join(by_n[n])})" for n in sorted(by_n, reverse=True))


PAPER_ROWS = {  # method: (setting, what it is)
    "slr_paper": ("90u", "SLR, the authors' schedule"),
    "gmp_slr": ("90u", "magnitude pruning, SLR's optimizer, batch and epochs"),
    "admm_paper": ("71x", "ADMM, the paper's schedule, harden=0"),
    "gmp_admm": ("71x", "magnitude pruning, ADMM's optimizer, batch and epochs"),
    "admm_paper_harden0.3": ("71x", "ADMM, the paper's schedule but harden=0.3 (see the note below)"),
}
TARGETS = {"slr_paper": ("retrain_free", 1.0), "admm_paper": ("retrained", 0.5)}


def _acc(rows, key):
    return f"{num(statistics.mean(_deltas(rows, key)), sign=True)} ({num(100 * rows[0][f'{key}_accuracy'])}%)"


@figure("admm_slr_paper.table")
def admm_slr_paper_table(*methods):
    """The paper-budget rows (one seed each); "not yet run" for a missing one."""
    rows = []
    for method in methods:
        setting, what = PAPER_ROWS[method]
        runs = _runs("admm_slr_paper", setting, method)
        if not runs:
            rows.append([SETTING_NAMES[setting], f"`{method}`: {what}", "—", NOT_RUN, NOT_RUN, "—"])
            continue
        target = "—"
        if method in TARGETS:
            key, limit = TARGETS[method]
            met = statistics.mean(_deltas(runs, key)) >= -limit
            target = f"{key.replace('_', '-')} within {num(limit, 1)} pt: {'met' if met else 'missed'}"
        rows.append([SETTING_NAMES[setting], f"`{method}`: {what}", len(runs), _acc(runs, "retrain_free"),
                     _acc(runs, "retrained"), target])
    notes = [f"`{r['method']}` (a note in the file): {r['relabelled']}" for r in load("admm_slr_paper")["runs"]
             if r["method"] in methods and r.get("relabelled")]
    return "\n\n".join([table(["setting", "method", "seeds", "retrain-free (pt, %)", "retrained (pt, %)",
                                "paper's target"], rows)] + notes)


@figure("admm_slr_paper.row")
def admm_slr_paper_row(method):
    """One paper-budget row in a sentence."""
    setting, _ = PAPER_ROWS[method]
    runs = _runs("admm_slr_paper", setting, method)
    if not runs:
        return f"`{method}`: {NOT_RUN}"
    return (f"`{method}` ({seeds_text(len(runs))}): {_acc(runs, 'retrain_free')} retrain-free, "
            f"{_acc(runs, 'retrained')} retrained, against its {num(100 * runs[0]['dense_accuracy'])}% dense start")


@figure("admm_slr_paper.short")
def admm_slr_paper_short(method):
    """A paper-budget row's retrained accuracy, short enough for a docstring line."""
    runs = _runs("admm_slr_paper", PAPER_ROWS[method][0], method)
    if not runs:
        return NOT_RUN
    delta = statistics.mean(_deltas(runs, "retrained"))
    return f"retrained {num(delta, sign=True)} pt ({num(100 * runs[0]['retrained_accuracy'])}%)"


@figure("admm_slr_paper.lead")
def admm_slr_paper_lead(a, b):
    """`a` against `b` at the paper budget, both keys, or "not yet run"."""
    ra, rb = (_runs("admm_slr_paper", PAPER_ROWS[m][0], m) for m in (a, b))
    if not ra or not rb:
        return f"`{a}` against `{b}`: {NOT_RUN}"
    parts = []
    for key, label in (("retrain_free", "retrain-free"), ("retrained", "retrained")):
        lead = statistics.mean(_deltas(ra, key)) - statistics.mean(_deltas(rb, key))
        parts.append(f"{num(abs(lead))} pt {'ahead of' if lead >= 0 else 'behind'} `{b}` {label}")
    return f"`{a}` is " + " and ".join(parts)


@figure("admm_slr_paper.note")
def admm_slr_paper_note(method):
    runs = [r for r in load("admm_slr_paper")["runs"] if r["method"] == method]
    return runs[0].get("relabelled", "") if runs else NOT_RUN


# -- admm_slr_tuning.json -------------------------------------------------

DEFAULTS = {"rho": 0.001, "rho_end": 1.0, "update_every": 20, "harden": 0.3}


def _rho(x):
    if x is None:
        return None
    return {0.001: "1e-3", 0.01: "1e-2"}.get(x, f"{x:g}")


def _label(cfg):
    if cfg["method"] == "GMP":
        return "MagnitudePruning (PolynomialDecay over 2 epochs), for reference"
    kw = cfg["kw"]
    text = f"ρ {_rho(kw['rho'])} " + ("constant" if kw["rho_end"] is None else f"→ {_rho(kw['rho_end'])}")
    text += f", {cfg['auto_updates']} updates" if kw["update_every"] == "auto" else f", every {kw['update_every']}"
    text += f", harden {kw['harden']:g}" if kw["harden"] else ""
    return f"**{text} (the defaults)**" if kw == DEFAULTS else text


def _tuning(method, sparsity, kw=None):
    for row in load("admm_slr_tuning")["rows"]:
        cfg = row["cfg"]
        if cfg["method"] == method and cfg["sparsity"] == float(sparsity) and cfg.get("kw") == kw:
            return row
    return None


@figure("tuning.table")
def tuning_table(method):
    """The tuning runs of one method (and GMP for reference), accuracy in %."""
    keys = []
    for row in load("admm_slr_tuning")["rows"]:
        cfg = row["cfg"]
        if cfg["method"] in ("GMP", method) and (cfg["method"], cfg.get("kw")) not in keys:
            keys.append((cfg["method"], cfg.get("kw")))
    keys.sort(key=lambda k: (k[0] != "GMP", k[1] == DEFAULTS))
    rows = []
    for m, kw in keys:
        cells = []
        for s in (0.9, 0.986):
            row = _tuning(m, s, kw)
            cells += [num(100 * row["retrain_free"]), num(100 * row["retrained"])] if row else ["", ""]
        rows.append([_label({"method": m, "kw": kw, "auto_updates": next(
            r["cfg"].get("auto_updates") for r in load("admm_slr_tuning")["rows"]
            if (r["cfg"]["method"], r["cfg"].get("kw")) == (m, kw))})] + cells)
    return table([f"{method} settings", "90%: retrain-free", "90%: +1 masked epoch", "98.6%: retrain-free",
                  "98.6%: +1 masked"], rows)


@figure("tuning.delta")
def tuning_delta(method, sparsity, key, against="dense"):
    """The defaults (or GMP) minus dense or minus GMP, in points."""
    row = _tuning(method, sparsity, None if method == "GMP" else DEFAULTS)
    base = load("admm_slr_tuning")["dense_accuracy"] if against == "dense" else _tuning("GMP", sparsity)[key]
    return num(100 * (row[key] - base), sign=True)


@figure("tuning.dense")
def tuning_dense():
    return num(100 * load("admm_slr_tuning")["dense_accuracy"]) + "%"


# -- admm_slr_sweep.json ----------------------------------------------------

def _sweep(method, rho, epochs):
    for c in load("admm_slr_sweep")["cells"]:
        if c["method"] == method and str(c["rho"]) == str(rho) and c["epochs"] == epochs:
            return num(c["delta_pt"], 1, sign=True)
    return ""


@figure("sweep.table")
def sweep_table(*methods):
    """Retrain-free − dense (pt) per ρ and method epochs; "A / B" for two methods."""
    data = load("admm_slr_sweep")
    rows = [["defaults" if rho == "default" else _rho(rho)]
            + [" / ".join(_sweep(m, rho, e) for m in methods) for e in data["epochs"]] for rho in data["rhos"]]
    return table(["ρ"] + [f"{e} epoch{'s' if e > 1 else ''}" for e in data["epochs"]], rows)


@figure("sweep.dense")
def sweep_dense():
    return num(100 * load("admm_slr_sweep")["dense_accuracy"]) + "%"
