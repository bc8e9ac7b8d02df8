"""User-supplied models: `entry: "my_package.my_module:factory"` names a factory that builds the model.

The module is imported only here, when a config names it, so plugin code runs only on the user's request.
The factory gets `checkpoint=` (when the config sets one) and the config's `options` as keyword
arguments, and must return an object with at least one capability (`ImageTextEncoder`, `Captioner`,
`Answerer`, the audio ones, or `SpokenAnswerer`: image + spoken question in one call, for spoken_vqa's
`mode: one_model`); that is checked before any data is loaded. A factory may leave out `info`: mmeval then records
the entry, checkpoint (with its sha256) and the parameter count of `module`.

A factory with a `trust_checkpoint` parameter is told whether the user passed `--trust-checkpoint`, and can
read its weights with `mmeval.models.safe_load.load_state_dict(path, trust_checkpoint)`; it may set
`info.loaded_with`, else the report says the plugin loaded its weights itself.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import CAPABILITIES, ModelInfo, capabilities_of
from mmeval.registry import did_you_mean


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _factory(entry: str):
    """Import `module:attr` and return the attribute, with one-line errors a user can act on."""
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise ModelLoadError(f"model.entry: '{entry}' is not of the form 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ModelLoadError(f"model.entry: cannot import {module_name} for plugin {entry}: no module named "
                                 f"'{exc.name}' (is it installed, or on PYTHONPATH?)") from exc
        raise ModelLoadError(f"model.entry: importing {module_name} for plugin {entry} failed ({_one_line(exc)})") from exc
    except Exception as exc:  # the plugin module itself is broken: any error its top level raises
        raise ModelLoadError(f"model.entry: importing {module_name} for plugin {entry} failed ({_one_line(exc)})") from exc
    if not hasattr(module, attr):
        public = [name for name in dir(module) if not name.startswith("_") and callable(getattr(module, name))]
        raise ModelLoadError(f"model.entry: module {module_name} has no attribute '{attr}'.{did_you_mean(attr, public)}")
    factory = getattr(module, attr)
    if not callable(factory):
        raise ModelLoadError(f"model.entry: {entry} is a {type(factory).__name__}, not a callable factory")
    return factory


def _needs(protocol: type) -> list[str]:
    """A capability's members in declaration order: its attributes, then its methods."""
    methods = [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]
    return list(getattr(protocol, "__annotations__", {})) + methods


def _refusal(entry: str, model: Any) -> str:
    """Why `model` has no capability: for each capability of `type: plugin` (image and audio; video models have
    their own plugin type), what it needs and what the object lacks."""
    from mmeval.registry import MODELS

    parts = []
    for name in MODELS["plugin"].capabilities:
        protocol = CAPABILITIES[name]
        needs = _needs(protocol)
        lacks = [member for member in needs if member != "info" and not hasattr(model, member)]
        article = "an" if name[0] in "aeiou" else "a"
        parts.append(f"{article} {name} (needs {', '.join(needs)}" + (f"; lacks {', '.join(lacks)})" if lacks else ")"))
    return (f"plugin {entry} returned a {type(model).__name__}, which is neither " + " nor ".join(parts)
            + "; a video model is model.type: video_plugin")


def _check_declared(entry: str, model: Any) -> set[str]:
    """Capabilities the object declares (or has); a declared one must be known and actually present."""
    capabilities = capabilities_of(model)
    for name in sorted(capabilities):
        protocol = CAPABILITIES.get(name)
        if protocol is None:
            raise ModelLoadError(f"plugin {entry} declares an unknown capability '{name}'."
                                 f"{did_you_mean(name, list(CAPABILITIES))} Known: {', '.join(CAPABILITIES)}")
        if not isinstance(model, protocol):
            lacks = [member for member in _needs(protocol) if not hasattr(model, member)]
            raise ModelLoadError(f"plugin {entry} declares capability '{name}' but lacks {', '.join(lacks)}")
    return capabilities


def _default_info(cfg, model: Any) -> ModelInfo:
    checkpoint = cfg.checkpoint
    return ModelInfo.of_checkpoint("plugin", cfg.name or cfg.entry, checkpoint, model.module, entry=cfg.entry,
                                   options=dict(cfg.options or {}))


def _takes_trust(factory) -> bool:
    try:
        return "trust_checkpoint" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def load(cfg, trust_checkpoint: bool = False) -> Any:
    """Build the model with the plugin's factory; refuse an object with no capability, with what it lacks."""
    entry, options = cfg.entry, dict(cfg.options or {})
    if "trust_checkpoint" in options:
        raise ModelLoadError("model.options: 'trust_checkpoint' cannot be set in a config; pass --trust-checkpoint "
                             "on the command line")
    factory = _factory(entry)
    kwargs = dict(options)
    if cfg.checkpoint is not None:
        if "checkpoint" in kwargs:
            raise ModelLoadError("model.options: 'checkpoint' is set both as model.checkpoint and in options")
        kwargs["checkpoint"] = cfg.checkpoint
    if _takes_trust(factory):
        kwargs["trust_checkpoint"] = trust_checkpoint
    try:
        model = factory(**kwargs)
    except MmevalError:  # mmeval's own one-line errors (e.g. safe_load's refusal) pass through as they are
        raise
    except Exception as exc:  # whatever the user's code raises; the traceback is chained for --debug
        raise ModelLoadError(f"plugin {entry} raised {_one_line(exc)}") from exc
    if not hasattr(model, "info") and hasattr(model, "module"):
        try:
            model.info = _default_info(cfg, model)
        except AttributeError as exc:  # __slots__ or a frozen object
            raise ModelLoadError(f"plugin {entry} returned a {type(model).__name__} without an 'info' attribute, "
                                 "and mmeval cannot set one; give it an info (mmeval.models.base.ModelInfo)") from exc
    elif cfg.name and isinstance(getattr(model, "info", None), ModelInfo):
        model.info = dataclasses.replace(model.info, name=cfg.name)
    if not _check_declared(entry, model):
        raise ModelLoadError(_refusal(entry, model))
    if isinstance(getattr(model, "info", None), ModelInfo) and model.info.loaded_with is None:
        model.info.loaded_with = f"plugin factory {entry} (its own loading)"
    return model
