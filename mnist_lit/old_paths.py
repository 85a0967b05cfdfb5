"""The module paths of mnist-lit 0.1.0-0.5.0, whose modules lay flat in one folder, as names of today's.

Configs name classes by those paths (``mnist_lit.model.ImageClassifier``), checkpoints record
them, and scripts import from them. Each old path is an alias: importing it gives today's module
itself (or, for a module that was split, one holding the names of its parts), so every class
and function has one identity. Only paths that no module holds today are answered here.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

OLD_PATHS = {
    "augment": ("data.augment",),
    "calibrate": ("commands.calibrate",),
    "checkpoint_files": ("checkpoints.finding", "checkpoints.reading"),
    "cli": ("commands.cli",),
    "confidence": ("models.confidence",),
    "datasets": ("data.sets",),
    "errors": ("core.errors",),
    "export": ("commands.export",),
    "figures": ("evaluation.figures",),
    "files": ("core.atomic_files",),
    "hardware": ("core.hardware",),
    "inference": ("models.predictor",),
    "logger": ("evaluation.logger",),
    "metrics": ("models.metrics",),
    "model": ("models.classifier",),
    "networks": ("models.networks",),
    "outliers": ("data.outliers",),
    "predict": ("commands.predict",),
    "preprocess": ("data.pictures",),
    "progress": ("commands.progress_bar",),
    "recipes": ("commands.recipes",),
    "report": ("evaluation.report",),
    "serve": ("commands.serve",),
    "sources": ("data.builtin_files", "data.layouts", "data.decoding", "data.decoded_cache"),
    "tune": ("commands.tune",),
}


class OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mnist_lit.<old name>`` and loads it as today's module."""

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        package, _, old = name.partition(".")
        if package != "mnist_lit" or old not in OLD_PATHS:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        modules = [importlib.import_module(f"mnist_lit.{new}") for new in OLD_PATHS[spec.name.partition(".")[2]]]
        if len(modules) == 1:
            spec.loader_state = modules[0].__spec__  # the import system sets the alias's; given back in exec_module
            return modules[0]
        merged = types.ModuleType(spec.name, f"The names of {', '.join(module.__name__ for module in modules)}.")
        for module in modules:
            merged.__dict__.update({key: value for key, value in vars(module).items() if not key.startswith("__")})
        return merged

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__spec__.loader_state is not None:
            module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Answer the old paths, after every other finder (so a module of today's is never shadowed); once."""
    if not any(isinstance(finder, OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(OldPaths())
