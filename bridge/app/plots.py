"""Pictures of a paired run: both rasters and a trace overlay; or, for independent noise, the statistics."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def crosscheck_figure(brian_record, torch_record, report, path, title=""):
    populations = list(brian_record.spikes)
    keys = list(brian_record.traces)
    fig, axes = plt.subplots(len(populations) + len(keys[:1]), 1, figsize=(10, 2.6 * (len(populations) + 1)),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    to_ms = 1e3 * brian_record.dt
    for ax, pop in zip(axes, populations):
        for record, style in ((brian_record, dict(marker="|", s=40, color="tab:blue", label="Brian2")),
                              (torch_record, dict(marker="x", s=8, color="tab:red", label="torch"))):
            neurons, steps = record.spikes[pop]
            ax.scatter(steps * to_ms, neurons, linewidths=0.8, **style)
        ax.set_ylabel(f"{pop}\nneuron")
        ax.legend(loc="upper right", fontsize=8)
    if keys:
        ax, key = axes[-1], keys[0]
        time = np.arange(brian_record.n_steps) * to_ms
        ax.plot(time, brian_record.traces[key][:, 0], color="tab:blue", lw=1.5, label="Brian2")
        ax.plot(time, torch_record.traces[key][:, 0], color="tab:red", lw=0.8, ls="--", label="torch")
        ax.set_ylabel(f"{key}[0] (SI)")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (ms)")
    verdict = "identical" if report.identical else f"not identical ({len(report.divergences)} unmatched)"
    fig.suptitle(f"{title}  {report.tolerance_class} class: {verdict}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def statistics_figure(report, path, title=""):
    """Mean rate and CV per population, Brian2 next to torch (the stochastic class)."""
    populations = list(report.statistics)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.arange(len(populations))
    for ax, name, label in ((axes[0], "rate", "mean rate (Hz)"), (axes[1], "cv", "mean ISI CV")):
        for offset, backend, color in ((-0.2, "brian2", "tab:blue"), (0.2, "torch", "tab:red")):
            values = [report.statistics[p][backend][name] or 0.0 for p in populations]
            ax.bar(x + offset, values, width=0.4, color=color, label=backend)
        ax.set_xticks(x, populations)
        ax.set_ylabel(label)
    axes[0].legend()
    fig.suptitle(f"{title}: {report.seeds} seeds, independent noise, passed: {'yes' if report.passed else 'no'}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep_figure(table, paths, names, path, paired=False):
    """The first population's rate against the first path varied (SI; paths given one value are left out), one
    line per combination of the other varied values (`names`: a short name per path); in a paired sweep, runs
    whose backends were not identical marked by a red cross."""
    from bridge.quantities import si_value

    rates = [column for column in table.columns if column.endswith(".rate_hz")]
    fig, ax = plt.subplots(figsize=(7, 4))
    done = table[table[rates[0]].notna()] if rates else table.iloc[:0]
    paths = [path for path in paths if table[path].astype(str).nunique() > 1] or paths[:1]
    x_path, others = paths[0], paths[1:]
    number = lambda value: si_value(value, x_path) if isinstance(value, str) else float(value)
    groups = done.groupby([done[p].astype(str) for p in others], sort=False) if others else [("", done)]
    for label, rows in groups:
        rows = rows.assign(_x=rows[x_path].map(number)).sort_values("_x")
        name = ", ".join(f"{names[p]}={v}" for p, v in zip(others, np.atleast_1d(label)))
        ax.plot(rows["_x"], rows[rates[0]], marker="o", ms=4, label=name or None)
        if paired:
            wrong = rows[~rows["identical"].astype(bool)]
            ax.scatter(wrong["_x"], wrong[rates[0]], marker="x", s=60, color="red", zorder=3)
    ax.set_xlabel(f"{x_path} (SI)")
    ax.set_ylabel(f"{rates[0]} (Hz)" if rates else "no finished run")
    if others and len(groups) <= 12:
        ax.legend(fontsize=7)
    failed = len(table) - len(done)
    identical = int(done["identical"].astype(bool).sum()) if paired and len(done) else None
    verdict = f", identical: {identical} of {len(done)}" if identical is not None else ""
    fig.suptitle(f"{len(table)} runs{verdict}" + (f", {failed} failed" if failed else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def loss_figure(history, path, title="", stage_starts=()):
    """The loss of every start at every step of a fit (log scale); a dashed line where each later stage starts."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    curves = np.asarray(history, dtype=float).reshape(len(history), -1)
    for start in range(curves.shape[1]):
        ax.semilogy(curves[:, start], lw=1, label=f"start {start}" if curves.shape[1] > 1 else None)
    for step in stage_starts:
        ax.axvline(step, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if curves.shape[1] > 1 and curves.shape[1] <= 10:
        ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def fit_figure(target, fitted, keys, populations, path, title=""):
    """A fit's target against the fitted model's Brian2 run: the first element of each trace, each raster."""
    panels = len(keys) + len(populations)
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.4 * panels), sharex=True, squeeze=False)
    to_ms = 1e3 * fitted.dt
    for ax, key in zip(axes[:, 0], keys):
        rows = target.traces[key].shape[0]
        time = np.arange(rows) * to_ms * fitted.n_steps / rows
        ax.plot(time, target.traces[key][:, 0], color="black", lw=1.5, label="target")
        ax.plot(time, fitted.traces[key][:, 0], color="tab:red", lw=0.8, ls="--", label="fitted (Brian2)")
        ax.set_ylabel(f"{key}[0] (SI)")
        ax.legend(loc="upper right", fontsize=8)
    for ax, population in zip(axes[len(keys):, 0], populations):
        for spikes, style in ((target.spikes[population], dict(marker="|", s=40, color="black", label="target")),
                              (fitted.spikes[population], dict(marker="x", s=8, color="tab:red",
                                                               label="fitted (Brian2)"))):
            ax.scatter(spikes[1] * to_ms, spikes[0], linewidths=0.8, **style)
        ax.set_ylabel(f"{population}\nneuron")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (ms)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
