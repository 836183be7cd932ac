"""Error rates and power of the recalibration diagnostics on simulated adaptive logs (issue 15).

    python benchmarks/bench_recalibration.py [--replications 3] [--seed 15]

The study: a 300-item 2PL bank in 3 skills of 100 items (a ~ lognormal(0.1, 0.3),
b ~ N(0, 1)); each of 2,000 candidates (θ ~ N(0, 1) per skill) takes a 15-item adaptive test per
skill (randomesque maximum information, `calibration.simulate`), so items get from about 10 to
several hundred responses. The *current* parameters are the free calibration of a first log
(lognormal(0, 0.5) slope prior, the recalibration default) with its standard errors; a second
log from the same true parameters is recalibrated against them in ``free`` mode (every item
estimated, each skill linked by Stocking–Lord), so nothing has truly changed and every flag is
a false one. Then, on fresh logs:

* **drift power**: 10 items' true b shifted by +0.5 logit in the second log; share flagged;
* **misfit power**: one item per skill made non-monotone (P = 0.15 + 0.7·exp(−θ²/0.5)) in the
  second log; share flagged (reported with its response count);
* **miskey**: 5 items whose recorded key is a distractor (responses simulated with the true key,
  scored with the wrong one); flagged "possibly miskeyed" with the right option named?
* **publish rules**: with the default `PublishRules`, no item recommended for publishing has a
  new SE(a) or SE(b) larger than the current one, or fewer than the minimum responses.
* **fit statistics under the null with fixed parameters**: the rest-θ and the sequential
  statistic evaluated with the *true* parameters (what an anchored item sees).
* **CLI = web**: `proficio recalibrate` on the written files and `recalibrate` on the same data
  give the same table.

Also: a 300-response power study of drift and misfit (one skill, 20 items, every item answered
by ≈300 candidates).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import irt
from calibration.drift import ParameterErrors
from calibration.fit import item_fit
from calibration.recalibrate import (
    CurrentParameters,
    ItemKeys,
    PublishRules,
    RecalibrationSettings,
    recalibrate,
)
from calibration.simulate import simulate_adaptive_responses, simulate_option_choices
from irt import Bank, ItemParams, SparseResponses
from irt.io import ResponseLog, write_items_csv

N_SKILLS, PER_SKILL, N_PERSONS, TEST_LENGTH = 3, 100, 2000, 15
OPTIONS = ("a", "b", "c", "d")


def make_bank(rng: np.random.Generator) -> Bank:
    items = []
    for s in range(N_SKILLS):
        for k in range(PER_SKILL):
            items.append(ItemParams(f"S{s}-{k:03d}", "2pl", float(np.exp(rng.normal(0.1, 0.3))),
                                    float(rng.normal(0, 1)), skill=f"skill{s}"))
    return Bank.from_params(items)


def adaptive_log(bank: Bank, rng: np.random.Generator, n_persons: int = N_PERSONS,
                 length: int = TEST_LENGTH, misfit: dict[int, bool] | None = None
                 ) -> tuple[SparseResponses, np.ndarray]:
    """One adaptive test per skill per person, rows in administration order per person."""
    theta = rng.normal(0, 1, (n_persons, N_SKILLS))
    parts = []
    for s in range(N_SKILLS):
        idx = bank.skill_indices(f"skill{s}")
        r = simulate_adaptive_responses(theta[:, s], bank.take(idx), length, rng)
        resp = r.response.copy()
        for i in (misfit or {}):
            rows = np.flatnonzero(idx[r.item] == i)
            t = theta[r.person[rows], s]
            p = 0.15 + 0.7 * np.exp(-(t**2) / 0.5)
            resp[rows] = (rng.random(rows.size) < p).astype(np.int64)
        parts.append((r.person, idx[r.item], resp))
    person = np.concatenate([p[0] for p in parts])
    order = np.argsort(person, kind="stable")
    item = np.concatenate([p[1] for p in parts])[order]
    resp = np.concatenate([p[2] for p in parts])[order]
    return SparseResponses(person[order], item, resp, n_persons, len(bank)), theta


def as_log(data: SparseResponses, bank: Bank, tag: str) -> ResponseLog:
    return ResponseLog(tuple(f"{tag}{p:05d}" for p in range(data.n_persons)), bank.item_ids,
                       data)


def skills_of(bank: Bank) -> dict[str, str]:
    return dict(zip(bank.item_ids, bank.skills, strict=True))


def current_from(log: ResponseLog, bank: Bank) -> CurrentParameters:
    """The first log's free calibration (with SEs) as the published parameters."""
    empty = CurrentParameters.empty()
    res = recalibrate(log, empty, RecalibrationSettings(mode="free"),
                      skills=skills_of(bank))
    est = [it for it in res.items if it.new is not None]
    cur = Bank.from_params(it.new for it in est)
    se = ParameterErrors(np.array([np.nan if it.se_a is None else it.se_a for it in est]),
                         np.array([np.nan if it.se_b is None else it.se_b for it in est]))
    return CurrentParameters(cur, se, np.array([it.n_responses for it in est]),
                             ("operational",) * len(est), np.zeros(len(est), dtype=bool))


def null_study(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    bank = make_bank(rng)
    first, _ = adaptive_log(bank, rng)
    current = current_from(as_log(first, bank, "p"), bank)
    second, _ = adaptive_log(bank, rng)
    log = as_log(second, bank, "q")
    t0 = time.perf_counter()
    res = recalibrate(log, current, RecalibrationSettings(mode="free"), skills=skills_of(bank))
    seconds = time.perf_counter() - t0
    est = [it for it in res.items if it.role == "estimated"]
    fit_tested = [it for it in est if it.fit and it.fit.p_value is not None]
    drift_tested = [it for it in est if it.drift and it.drift.evidence != "not tested: no SE"]
    publish = [it for it in res.items if it.action == "publish"]
    rules = res.settings.rules
    worse = [it for it in publish
             if (it.current_se_b is not None and it.se_b is not None
                 and it.current_se_b < it.se_b)
             or (it.current_se_a is not None and it.se_a is not None
                 and it.current_se_a < it.se_a)]
    few = [it for it in publish if it.n_responses < rules.min_responses]
    # fixed (true) parameters: the two sparse-data statistics under the null
    fixed = item_fit(log.for_bank(bank), bank, estimated=np.zeros(len(bank), dtype=bool))
    rest = item_fit(log.for_bank(bank), bank)
    ok_f, ok_r = np.isfinite(fixed.p_value), np.isfinite(rest.p_value)
    return {
        "items": len(est), "seconds": seconds,
        "drift_tested": len(drift_tested),
        "drift_flags": sum(1 for it in est if it.drift and it.drift.flagged),
        "fit_tested": len(fit_tested),
        "fit_flags": sum(1 for it in fit_tested if it.fit.flagged),
        "publish": len(publish), "publish_worse_se": len(worse), "publish_few": len(few),
        "seq_true_tested": int(ok_f.sum()),
        "seq_true_flags": int(np.sum(fixed.p_value[ok_f] < 0.01)),
        "rest_true_tested": int(ok_r.sum()),
        "rest_true_flags": int(np.sum(rest.p_value[ok_r] < 0.01)),
        "median_n": float(np.median([it.n_responses for it in est])),
    }


def change_study(seed: int) -> dict[str, object]:
    """10 items shifted by 0.5 logit, one misfitting item per skill, 5 miskeyed items."""
    rng = np.random.default_rng(seed + 1000)
    bank = make_bank(rng)
    first, _ = adaptive_log(bank, rng)
    current = current_from(as_log(first, bank, "p"), bank)
    counts = np.bincount(first.item, minlength=len(bank))
    # the changed items: among the well-exposed ones (drift needs responses to be seen)
    well = np.flatnonzero(counts >= 150)
    pick = rng.choice(well, 18, replace=False)
    shifted, misfit, miskey = pick[:10], pick[10:13], pick[13:18]
    items = [ItemParams(p.item_id, p.model, p.a, p.b + (0.5 if k in set(shifted) else 0.0),
                        skill=p.skill) for k, p in enumerate(bank.params())]
    changed = Bank.from_params(items)
    second, theta = adaptive_log(changed, rng, misfit={int(i): True for i in misfit})
    true_keys = rng.integers(0, 4, len(bank))
    keys = true_keys.copy()
    keys[miskey] = (true_keys[miskey] + 1 + rng.integers(0, 3, 5)) % 4
    scored, chosen = simulate_option_choices(theta, bank, second, keys, true_keys, 4, rng)
    log = as_log(scored, bank, "q")
    item_keys = ItemKeys({iid: OPTIONS for iid in bank.item_ids},
                         {iid: OPTIONS[k] for iid, k in zip(bank.item_ids, keys, strict=True)})
    res = recalibrate(log, current, RecalibrationSettings(mode="free"), keys=item_keys,
                      choices=[OPTIONS[c] for c in chosen], skills=skills_of(bank))
    by_id = {it.item_id: it for it in res.items}
    ids = bank.item_ids
    drift_hit = [bool(by_id[ids[i]].drift and "b" in by_id[ids[i]].drift.flagged)
                 for i in shifted]
    fit_hit = [bool(by_id[ids[i]].fit and by_id[ids[i]].fit.flagged) for i in misfit]
    mk = [(by_id[ids[i]].analysis.possibly_miskeyed,
           by_id[ids[i]].analysis.suspected_key == OPTIONS[true_keys[i]]) for i in miskey]
    others = [it for k, it in enumerate(res.items) if k not in set(pick)]
    return {"drift_detected": sum(drift_hit), "drift_n": [int(by_id[ids[i]].n_responses)
                                                          for i in shifted],
            "misfit_detected": sum(fit_hit),
            "misfit_n": [int(by_id[ids[i]].n_responses) for i in misfit],
            "miskey_flagged": sum(f for f, _ in mk), "miskey_named": sum(n for _, n in mk),
            "miskey_false": sum(1 for it in others if it.analysis
                                and it.analysis.possibly_miskeyed)}


def power_300(seed: int) -> dict[str, float]:
    """20 items, 300 responses each on random 10-item forms; 1 item drifted 0.5, 1 misfitting."""
    rng = np.random.default_rng(seed + 2000)
    n_items, n_persons = 20, 600
    bank = irt.generate_items(n_items, "2pl", rng, skill="one")
    cur_theta = rng.normal(size=n_persons)
    mask = np.zeros((n_persons, n_items), dtype=bool)
    for p in range(n_persons):
        mask[p, rng.choice(n_items, 10, replace=False)] = True
    x0 = irt.simulate_responses(cur_theta, bank, rng)
    log0 = ResponseLog(tuple(f"p{p}" for p in range(n_persons)), bank.item_ids,
                       SparseResponses.from_dense(x0, mask))
    current = current_from_single(log0, bank)
    shifted = Bank.from_params(ItemParams(p.item_id, "2pl", p.a, p.b + (0.5 if k == 0 else 0),
                                          skill="one") for k, p in enumerate(bank.params()))
    theta = rng.normal(size=n_persons)
    x = irt.simulate_responses(theta, shifted, rng)
    bump = 0.15 + 0.7 * np.exp(-(theta**2) / 0.5)
    x[:, 1] = (rng.random(n_persons) < bump).astype(int)
    log = ResponseLog(tuple(f"q{p}" for p in range(n_persons)), bank.item_ids,
                      SparseResponses.from_dense(x, mask))
    res = recalibrate(log, current, RecalibrationSettings(mode="free"), skills=skills_of(bank))
    it0, it1 = res.item(bank.item_ids[0]), res.item(bank.item_ids[1])
    return {"drift": float("b" in (it0.drift.flagged if it0.drift else "")),
            "misfit": float(bool(it1.fit and it1.fit.flagged)),
            "n": float(it0.n_responses),
            "others_flagged": float(sum(1 for it in res.items[2:]
                                        if (it.fit and it.fit.flagged)
                                        or (it.drift and it.drift.flagged)))}


def current_from_single(log: ResponseLog, bank: Bank) -> CurrentParameters:
    return current_from(log, bank)


def cli_equals_library(seed: int) -> bool:
    """`proficio recalibrate` on files = `recalibrate` on the same data."""
    rng = np.random.default_rng(seed + 3000)
    bank = make_bank(rng)
    first, _ = adaptive_log(bank, rng)
    current = current_from(as_log(first, bank, "p"), bank)
    second, _ = adaptive_log(bank, rng, n_persons=800)
    log = as_log(second, bank, "q")
    with tempfile.TemporaryDirectory() as d:
        items, resp, out = Path(d, "items.csv"), Path(d, "responses.csv"), Path(d, "r.csv")
        write_items_csv(items, current.bank, {"se_a": list(current.se.a),
                                              "se_b": list(current.se.b),
                                              "n_responses": list(current.n_responses)})
        with open(resp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["person_id", "item_id", "response"])
            for p, i, x in zip(log.data.person, log.data.item, log.data.response, strict=True):
                w.writerow([log.person_ids[p], log.item_ids[i], int(x)])
        spec = Path(d, "spec.csv")
        spec.write_text("item_id,skill\n" + "".join(f"{i},{s}\n" for i, s in
                                                      skills_of(bank).items()))
        subprocess.run([sys.executable, "-m", "web.cli", "recalibrate", str(resp), "--current",
                        str(items), "--items", str(spec), "--mode", "free", "--table", str(out),
                        "--quiet"], check=True)
        from irt.io import read_items_csv, read_responses_csv

        lib = recalibrate(read_responses_csv(resp),
                          CurrentParameters.from_table(read_items_csv(items)),
                          RecalibrationSettings(mode="free"), skills=skills_of(bank))
        with open(out) as f:
            cli_rows = list(csv.reader(f))[1:]
    from web.commands.recalibrate import table_cells

    return cli_rows == [table_cells(r) for r in lib.to_rows()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replications", type=int, default=3)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    print(f"bank {N_SKILLS * PER_SKILL} items, {N_PERSONS} adaptive sessions, "
          f"{TEST_LENGTH} items per skill; defaults {RecalibrationSettings()}")
    print(f"default publish rules: {PublishRules()}")
    tot: dict[str, float] = {}
    for r in range(args.replications):
        out = null_study(args.seed + r)
        print(f"null #{r}: {out}")
        for k, v in out.items():
            tot[k] = tot.get(k, 0.0) + v
    print(f"NULL over {args.replications} replications: drift flags "
          f"{tot['drift_flags']:.0f}/{tot['items']:.0f} items "
          f"({tot['drift_flags'] / tot['items']:.2%}; tested {tot['drift_tested']:.0f}), "
          f"fit flags {tot['fit_flags']:.0f}/{tot['items']:.0f} "
          f"({tot['fit_flags'] / tot['items']:.2%}; "
          f"{tot['fit_flags'] / max(tot['fit_tested'], 1):.2%} of the "
          f"{tot['fit_tested']:.0f} tested) at a nominal 1 %")
    print(f"  with the TRUE parameters (fixed items): sequential "
          f"{tot['seq_true_flags']:.0f}/{tot['seq_true_tested']:.0f}, rest-theta "
          f"{tot['rest_true_flags']:.0f}/{tot['rest_true_tested']:.0f} flagged at 1 %")
    print(f"  publish (default rules): {tot['publish']:.0f} items; with a larger new SE: "
          f"{tot['publish_worse_se']:.0f}; below min responses: {tot['publish_few']:.0f}")
    ch = [change_study(args.seed + r) for r in range(args.replications)]
    for r, c in enumerate(ch):
        print(f"change #{r}: {c}")
    print(f"CHANGE: 0.5-logit drift detected {sum(c['drift_detected'] for c in ch)}/"
          f"{10 * len(ch)}; misfitting items detected {sum(c['misfit_detected'] for c in ch)}/"
          f"{3 * len(ch)}; miskeyed flagged {sum(c['miskey_flagged'] for c in ch)}/"
          f"{5 * len(ch)}, right option named {sum(c['miskey_named'] for c in ch)}/"
          f"{5 * len(ch)}; false miskey flags {sum(c['miskey_false'] for c in ch)}")
    pw = [power_300(args.seed + r) for r in range(max(args.replications * 10, 10))]
    print(f"POWER at {pw[0]['n']:.0f} responses ({len(pw)} replications): 0.5-logit drift "
          f"{np.mean([p['drift'] for p in pw]):.0%}, non-monotone item "
          f"{np.mean([p['misfit'] for p in pw]):.0%}; other items flagged "
          f"{np.sum([p['others_flagged'] for p in pw]):.0f}/{18 * len(pw)}")
    print(f"CLI table == library table: {cli_equals_library(args.seed)}")


if __name__ == "__main__":
    main()
