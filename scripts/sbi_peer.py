"""A peer at the same budget: sbi's neural posterior estimation on tdglnre ensembles (issue 20).

Trains ``sbi``'s NPE (a masked autoregressive flow) with a CNN embedding of the
same widths as tdglnre's encoder (conv blocks 16-32-32-64, one 3x3 convolution
per block, ReLU, 2x2 max-pooling, global average ‖ global max pooling, a dense
layer of 64) on the same training ensemble, and reads the same test ensemble:
the MAE of the posterior mean, the mean 95 % width (shortest interval holding
95 % of 2000 posterior draws) and the expected-coverage deviation (the
marginal one from central intervals of the draws, the joint one from HPD
regions of the flow's density), in the form of ``tdglnre posterior
--test-set``'s calibration.json. Integer parameters (n_v) are dequantised with
U(−½, ½) for training; their posterior mean is that of the continuous flow.

``--method nrec`` trains sbi's NRE-C (contrastive neural ratio estimation,
Miller et al. 2022; ``num_classes`` = 7 contrastive θ plus the independent
class, the K = 8 of ``tdglnre train``) with the same CNN as the embedding of x
and sbi's MLP classifier (64 hidden units). Its learnt log ratio is evaluated
on tdglnre's own grid and calibrated by tdglnre's own code
(``tdglnre.nre.infer.inference.evaluate_test_set`` and ``calibration_report``,
grid of ``--grid`` points per continuous parameter): the report has the form
of calibration.json, so the two estimators are read by one yardstick. Integer
parameters need no dequantisation there.

sbi is not a tdglnre dependency; install it into its own environment::

    python -m venv sbienv && sbienv/bin/pip install "sbi==0.27.0" h5py
    PYTHONPATH=. sbienv/bin/python scripts/sbi_peer.py --train train.h5 --test test.h5 --out peer.json

The script reads the HDF5 files with h5py alone (layout: docs/file-format.md)
and takes the expected-coverage curve from the tdglnre source tree
(``PYTHONPATH=.``, numpy and scipy only), so tdglnre need not be installed there.
"""

from __future__ import annotations

import argparse
import json
import time

import h5py
import numpy as np

def _attr(f: h5py.File, key: str) -> str:
    v = f.attrs[key]
    return v.decode() if isinstance(v, bytes) else str(v)


def load(path: str, n: int | None, snapshots: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (S, C', N, N) float32 of the chosen snapshots, θ (S, P) and the parameter names."""
    with h5py.File(path, "r") as f:
        n_done = int(_attr(f, "n_complete"))
        n = n_done if n is None else min(n, n_done)
        x = np.asarray(f["x"][:n], dtype=np.float32)                       # (S, T, N, N, C)
        theta = np.asarray(f["theta"][:n], dtype=np.float32)
        names = json.loads(_attr(f, "parameter_names"))
    t = list(range(x.shape[1])) if snapshots == "all" else [x.shape[1] - 1]
    x = x[:, t]                                                             # (S, T', N, N, C)
    x = np.moveaxis(x, -1, 2).reshape(x.shape[0], -1, x.shape[2], x.shape[3])  # (S, T'·C, N, N)
    return x, theta, names


def prior_box(path: str, names: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Bounds of each parameter's prior and whether it is an integer one, from the file's prior."""
    with h5py.File(path, "r") as f:
        prior = json.loads(_attr(f, "prior"))
    lo, hi, integer = [], [], []
    for k in names:
        p = prior[k]
        if p["kind"] not in ("uniform", "int_uniform"):
            raise SystemExit(f"Error: the peer handles uniform and int_uniform priors only; {k} is {p['kind']}")
        integer.append(p["kind"] == "int_uniform")
        lo.append(p["low"] - 0.5 if integer[-1] else p["low"])
        hi.append(p["high"] + 0.5 if integer[-1] else p["high"])
    return np.array(lo), np.array(hi), integer


def embedding(n_channels: int, mean: np.ndarray, std: np.ndarray):
    import torch
    from torch import nn

    class CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
            blocks, c = [], n_channels
            for f in (16, 32, 32, 64):
                blocks += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
                c = f
            self.conv = nn.Sequential(*blocks)
            self.dense = nn.Sequential(nn.Linear(2 * c, 64), nn.ReLU())

        def forward(self, x):
            h = self.conv((x - self.mean) / self.std)
            return self.dense(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    return CNN()


def shortest_width(s: np.ndarray, mass: float = 0.95) -> float:
    s = np.sort(s)
    k = int(np.ceil(mass * len(s)))
    return float(np.min(s[k - 1:] - s[: len(s) - k + 1]))


def coverage_curve(cred: np.ndarray) -> dict:
    """tdglnre's expected coverage of these credibilities (calibration.json's form, with its signed largest miss)."""
    from tdglnre.nre.infer.calibration import expected_coverage

    return expected_coverage(cred).to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True, help="JSON report")
    ap.add_argument("--n-train", type=int, default=None, help="first n training samples (default: all)")
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--snapshots", choices=["last", "all"], default="last")
    ap.add_argument("--epochs", type=int, default=200, help="maximum epochs (sbi stops early after 20 flat ones)")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", choices=["npe", "nrec"], default="npe")
    ap.add_argument("--grid", type=int, default=256, help="nrec: grid points per continuous parameter")
    a = ap.parse_args()
    if a.method == "nrec":
        return nrec(a)

    import sbi
    import torch
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.utils import BoxUniform

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    x_tr, th_tr, names = load(a.train, a.n_train, a.snapshots)
    x_te, th_te, _ = load(a.test, a.n_test, a.snapshots)
    lo, hi, integer = prior_box(a.train, names)
    th_tr = th_tr.copy()
    for d, isint in enumerate(integer):
        if isint:
            th_tr[:, d] += rng.uniform(-0.5, 0.5, len(th_tr)).astype(np.float32)
    mean = x_tr.mean(axis=(0, 2, 3))
    std = x_tr.std(axis=(0, 2, 3)) + 1e-6
    prior = BoxUniform(torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32))
    net = posterior_nn("maf", embedding_net=embedding(x_tr.shape[1], mean, std), hidden_features=64,
                       z_score_x="none")
    from sbi.utils.tracking import TensorBoardTracker
    from torch.utils.tensorboard import SummaryWriter

    # sbi's training log goes beside the report, not into ./sbi-logs of whatever directory this runs in
    inf = NPE(prior=prior, density_estimator=net, tracker=TensorBoardTracker(SummaryWriter(a.out + ".sbi-logs")))
    t0 = time.perf_counter()
    est = inf.append_simulations(torch.tensor(th_tr), torch.tensor(x_tr)).train(
        training_batch_size=64, max_num_epochs=a.epochs, show_train_summary=False)
    t_train = time.perf_counter() - t0
    torch.save(est.state_dict(), a.out + ".estimator.pt")   # the trained weights, kept whatever happens next

    # Evaluate the flow with the embedding computed once per observation: sbi's log_prob repeats the image
    # for every θ before embedding it, which for 2000 draws of a batch of images runs out of memory.
    t0 = time.perf_counter()
    flow = est.net
    with torch.no_grad():
        th5, x1 = torch.tensor(th_te[:5]), torch.tensor(x_te[:1])
        ref = est.log_prob(th5[:, None], condition=x1)[:, 0]           # sbi's own evaluation, for a check
        emb, flow._embedding_net = flow._embedding_net, torch.nn.Identity()
        mine = flow.log_prob(th5, context=emb(x1).expand(5, -1))
    if not torch.allclose(ref, mine, rtol=1e-4, atol=1e-4):
        raise SystemExit(f"Error: the split evaluation disagrees with sbi's log_prob: {mine} vs {ref}")
    lo_t, hi_t = torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32)
    P = len(names)
    mean_, w95 = np.zeros((len(x_te), P)), np.zeros((len(x_te), P))
    marg, joint = np.zeros((len(x_te), P)), np.zeros(len(x_te))
    with torch.no_grad():
        for i in range(len(x_te)):
            c = emb(torch.tensor(x_te[i : i + 1]))                                        # (1, 64)
            kept, n_kept = [], 0
            while n_kept < a.draws:                       # the prior's box: draws outside it are rejected
                s = flow.sample(a.draws, context=c)[0]
                s = s[((s >= lo_t) & (s <= hi_t)).all(dim=1)]
                kept.append(s)
                n_kept += len(s)
            s = torch.cat(kept)[: a.draws]
            both = torch.cat([s, torch.tensor(th_te[i : i + 1])])
            lp = flow.log_prob(both, context=c.expand(len(both), -1)).numpy()
            s = s.numpy()
            mean_[i] = s.mean(0)
            w95[i] = [shortest_width(s[:, d]) for d in range(P)]
            F = (s < th_te[i]).mean(0)
            marg[i] = np.abs(2 * F - 1)          # credibility of the central interval that just reaches the truth
            joint[i] = (lp[:-1] > lp[-1]).mean()  # credibility of the HPD region that just reaches the truth
    t_eval = time.perf_counter() - t0
    rep = {
        "method": "sbi NPE (MAF, CNN embedding 16-32-32-64 -> 64)", "sbi": sbi.__version__, "torch": torch.__version__,
        "train": a.train, "test": a.test, "n_train": len(x_tr), "n_test": len(x_te), "parameters": names,
        "epochs_trained": len(inf._summary["epoch_durations_sec"]) if hasattr(inf, "_summary") else None,
        "train_seconds": t_train, "eval_seconds": t_eval, "draws": a.draws,
        "mae": {n: float(np.abs(mean_[:, d] - th_te[:, d]).mean()) for d, n in enumerate(names)},
        "mae_se": {n: float(np.abs(mean_[:, d] - th_te[:, d]).std() / np.sqrt(len(x_te))) for d, n in enumerate(names)},
        "width95": {n: float(w95[:, d].mean()) for d, n in enumerate(names)},
        "expected_coverage": coverage_curve(joint),
        "marginal_expected_coverage": {n: coverage_curve(marg[:, d]) for d, n in enumerate(names)},
    }
    with open(a.out, "w") as fh:
        json.dump(rep, fh, indent=1)
    print(json.dumps({k: rep[k] for k in ("mae", "width95", "train_seconds", "eval_seconds")}))
    print("coverage dev joint", rep["expected_coverage"]["signed_max_deviation"],
          {n: c["signed_max_deviation"] for n, c in rep["marginal_expected_coverage"].items()})


class _SbiRatio:
    """sbi's trained ratio estimator in the form ``tdglnre.nre.infer.inference`` evaluates: x embedded once."""

    def __init__(self, est, prior, names: list[str]):
        self.est, self.prior, self.parameter_names = est, prior, names

    def encode(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.est.embedding_net_x(torch.tensor(np.asarray(x, dtype=np.float32))).numpy()

    def log_ratio_from_embedding(self, h: np.ndarray, theta: np.ndarray, chunk: int = 65536) -> np.ndarray:
        import torch

        h = torch.tensor(np.atleast_2d(np.asarray(h, dtype=np.float32)))
        th = torch.tensor(np.asarray(theta, dtype=np.float32).reshape(len(theta), -1))
        out = np.empty((len(h), len(th)))
        with torch.no_grad():
            for g in range(0, len(th), chunk):
                et = self.est.embedding_net_theta(th[g:g + chunk])
                for i in range(len(h)):
                    z = torch.cat([et, h[i:i + 1].expand(len(et), -1)], dim=1)
                    out[i, g:g + chunk] = self.est.net(z).squeeze(-1).numpy()
        return out


def _nrec_embedding_once(base):
    """sbi's NRE-C whose classifier embeds each image once per step and repeats the embedding.

    sbi repeats every image for each of the K + 1 contrastive θ before the embedding net, and calls the
    classifier twice per step: 15 CNN passes per image with K = 7, where the CNN is a deterministic
    function of the image alone. Embedding once and repeating the embedding gives the same logits, the
    same gradients and the same draws of contrastive θ (checked against sbi's own on one batch of the
    trained network, :func:`nrec`), at the cost of 2 passes.
    """
    import torch
    from sbi.utils.torchutils import repeat_rows

    class NRECOnce(base):
        def _classifier_logits(self, theta, x, num_atoms):
            batch_size = theta.shape[0]
            net = self._neural_net
            hx = repeat_rows(net.embedding_net_x(x), num_atoms)
            probs = torch.ones(batch_size, batch_size) * (1 - torch.eye(batch_size)) / (batch_size - 1)
            choices = torch.multinomial(probs, num_samples=num_atoms - 1, replacement=False)
            atomic = torch.cat((theta[:, None, :], theta[choices]), dim=1).reshape(batch_size * num_atoms, -1)
            return net.net(torch.cat([net.embedding_net_theta(atomic), hx], dim=-1)).squeeze(-1)

    return NRECOnce


def nrec(a: argparse.Namespace) -> None:
    """Train sbi's NRE-C and calibrate it on tdglnre's grid with tdglnre's code (``--method nrec``)."""
    import sbi
    import torch
    from sbi.inference import NRE_C
    from sbi.neural_nets import classifier_nn
    from sbi.utils import BoxUniform
    from sbi.utils.tracking import TensorBoardTracker
    from torch.utils.tensorboard import SummaryWriter

    from tdglnre.io.priors import Prior
    from tdglnre.nre.infer.inference import calibration_report, evaluate_test_set
    from tdglnre.nre.infer.posterior import Grid

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    x_tr, th_tr, names = load(a.train, a.n_train, a.snapshots)
    x_te, th_te, _ = load(a.test, a.n_test, a.snapshots)
    lo, hi, _ = prior_box(a.train, names)
    with h5py.File(a.train, "r") as f:
        prior = Prior.from_dict(json.loads(_attr(f, "prior")))
    mean = x_tr.mean(axis=(0, 2, 3))
    std = x_tr.std(axis=(0, 2, 3)) + 1e-6
    box = BoxUniform(torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32))
    net = classifier_nn("mlp", z_score_theta="independent", z_score_x="none", hidden_features=64,
                        embedding_net_x=embedding(x_tr.shape[1], mean, std))
    inf = _nrec_embedding_once(NRE_C)(prior=box, classifier=net,
                                      tracker=TensorBoardTracker(SummaryWriter(a.out + ".sbi-logs")))
    t0 = time.perf_counter()
    est = inf.append_simulations(torch.tensor(th_tr), torch.tensor(x_tr)).train(
        num_classes=7, gamma=1.0, training_batch_size=64, max_num_epochs=a.epochs, show_train_summary=False)
    t_train = time.perf_counter() - t0
    torch.save(est.state_dict(), a.out + ".estimator.pt")
    est.eval()
    with torch.no_grad():  # the embedding-once classifier against sbi's own, same contrastive draws
        th16, x16 = torch.tensor(th_tr[:16]), torch.tensor(x_tr[:16])
        torch.manual_seed(1)
        sbi_own = NRE_C._classifier_logits(inf, th16, x16, 8)
        torch.manual_seed(1)
        once = inf._classifier_logits(th16, x16, 8)
    if not torch.allclose(sbi_own, once, rtol=1e-4, atol=1e-4):
        raise SystemExit(f"Error: the embedding-once classifier disagrees with sbi's: {once} vs {sbi_own}")
    wrapped = _SbiRatio(est, prior, names)
    with torch.no_grad():  # the split evaluation against sbi's own, on five θ of one test image
        th5, x1 = torch.tensor(th_te[:5]), torch.tensor(x_te[:1])
        ref = est.unnormalized_log_ratio(th5, x1.expand(5, *x1.shape[1:])).numpy()
    mine = wrapped.log_ratio_from_embedding(wrapped.encode(x_te[:1]), th_te[:5])[0]
    if not np.allclose(ref, mine, rtol=1e-4, atol=1e-4):
        raise SystemExit(f"Error: the split evaluation disagrees with sbi's log ratio: {mine} vs {ref}")
    t0 = time.perf_counter()
    grid = Grid.from_prior(prior, a.grid, names)
    rep = calibration_report(evaluate_test_set(wrapped, x_te, th_te.astype(np.float64), grid, seed=a.seed))
    t_eval = time.perf_counter() - t0
    rep.update({"method": "sbi NRE-C (num_classes 7, gamma 1; CNN embedding 16-32-32-64 -> 64, MLP classifier 64)",
                "sbi": sbi.__version__, "torch": torch.__version__, "train": a.train, "test": a.test,
                "n_train": len(x_tr), "epochs_trained": len(inf._summary["epoch_durations_sec"])
                if hasattr(inf, "_summary") else None, "train_seconds": t_train, "eval_seconds": t_eval,
                "grid_points": a.grid})
    with open(a.out, "w") as fh:
        json.dump(rep, fh, indent=1, default=float)
    print(json.dumps({"mae": {k: v["mean"] for k, v in rep["mae"].items()}, "train_seconds": t_train,
                      "eval_seconds": t_eval}))
    print("coverage max abs dev joint", rep["expected_coverage"]["max_abs_deviation"],
          {n: c["max_abs_deviation"] for n, c in rep["marginal_expected_coverage"].items()})


if __name__ == "__main__":
    main()
