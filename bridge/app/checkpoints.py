"""Checkpoints of training loops. Every `every` steps a loop's state is written atomically to FOLDER/NAME.pt:
modules, optimizers and schedulers by their state_dict, numpy Generators by their bit-generator state, tensors,
arrays, lists and dicts (the loop's record) by value, and torch's global RNG. A run with `resume` continues each
loop from its last checkpoint to the same numbers as an uninterrupted run; a run without it removes the folder's
checkpoints first, so that an earlier run's state is never resumed. A checkpoint keeps the run's identity (seed,
sizes, ...): resuming from another run's folder is refused."""
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bridge.app import files
from bridge.errors import DescriptionError


class Checkpoints:
    def __init__(self, folder, identity, resume=False, every=20):
        self.folder, self.identity, self.every = Path(folder), identity, every
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)

    def steps(self, name, total, state, postfix=None, **progress):
        """range(total) from loop `name`'s last checkpoint on (its values restored into `state`), saving `state`
        after every `every`-th step and the last; `progress`: tqdm's arguments; `postfix`: a function giving
        the progress bar's postfix (a dict) after each step."""
        path = self.folder / (re.sub(r"[^\w-]+", "_", name) + ".pt")  # "seed's setting" -> seed_s_setting.pt
        start = self._restore(path, state) if path.exists() else 0
        bar = tqdm(range(start, total), initial=start, total=total, **progress)
        for step in bar:
            yield step
            if postfix:
                bar.set_postfix(postfix(), refresh=False)
            if (step + 1) % self.every == 0 or step + 1 == total:
                self._save(path, step + 1, state)

    def _save(self, path, done, state):
        saved = {"identity": self.identity, "done": done, "torch_rng": torch.get_rng_state(),
                 "state": {key: _snapshot(value) for key, value in state.items()}}
        with files.atomic(path) as temporary:
            torch.save(saved, temporary)

    def _restore(self, path, state):
        try:
            saved = torch.load(path, weights_only=True)
        except Exception as err:
            raise DescriptionError(str(path), f"unreadable checkpoint ({type(err).__name__}); run without --resume "
                                              "to start afresh") from None
        if saved["identity"] != self.identity or set(saved["state"]) != set(state):
            raise DescriptionError(str(path), f"a checkpoint of another run ({saved['identity']}, not "
                                              f"{self.identity}); run without --resume to start afresh")
        for key, value in state.items():
            _load(value, saved["state"][key])
        torch.set_rng_state(saved["torch_rng"])
        return saved["done"]


def _snapshot(value):
    if hasattr(value, "state_dict"):
        return value.state_dict()
    if isinstance(value, np.random.Generator):
        return value.bit_generator.state
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, dict)):
        return value
    raise TypeError(f"no checkpoint rule for {type(value).__name__}")


def _load(value, saved):
    if hasattr(value, "load_state_dict"):
        value.load_state_dict(saved)
    elif isinstance(value, np.random.Generator):
        value.bit_generator.state = saved
    elif isinstance(value, np.ndarray):
        value[...] = saved.numpy()
    elif isinstance(value, torch.Tensor):
        with torch.no_grad():
            value.copy_(saved)
    elif isinstance(value, list):
        value[:] = saved
    else:
        value.clear()
        value.update(saved)
