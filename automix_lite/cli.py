"""The ``automix`` command.

- ``automix info``: the package, run mode, device and library versions, and the effects of
  :mod:`automix_lite.dsp` with their parameter ranges.
- ``automix mix STEMS_DIR --model NAME_OR_PATH --out MIX.wav [--params-out PARAMS.json] [--overwrite] [--pad]``:
  mix a folder of mono stems with a bundled model (``automix models``) or a ``.pt`` from ``automix train``,
  print the predicted parameters, write a 24-bit stereo WAV (chapter 3.4, ``notebooks/14_inference.ipynb``).
- ``automix render STEMS_DIR --params PARAMS.json --out MIX.wav [--overwrite] [--pad]``: render the stems with
  (edited) parameters; ``automix render IN.wav --params CHAIN.json --out OUT.wav``: one recording through the
  track chain of a file from ``automix style-track --params-out``.
- ``automix style-track IN.wav --reference REF.wav --out OUT.wav [--model NAME_OR_PATH | --optimise [--method
  gradient|cma] [--steps N]] [--params-out P.json] [--overwrite]``: process one recording (mono or stereo) with
  an EQ -> compressor chain so that it sounds processed like the reference (style transfer, chapter 5.1,
  ``notebooks/17_style_transfer_track.ipynb``). By default the trained model ``style_track``
  (:func:`automix_lite.models.style.transfer`, one pass) predicts the chain's settings; ``--optimise`` instead
  searches them for this pair (:func:`automix_lite.style_optimise.optimise_track`, training-free).
  ``--params-out`` writes the settings as JSON ``{"format": "automix-lite-track-chain", "version": 1,
  "sample_rate", "method", ..., "params": {name: value in real units}}`` (:func:`automix_lite.parameters.chain_text`
  / ``read_chain``), which ``automix render IN.wav --params P.json`` renders again
  (:func:`automix_lite.style_optimise.process_track`).
- ``automix style STEMS_DIR --reference REF.wav --out MIX.wav [--model NAME_OR_PATH | --optimise [--method ...]
  [--steps N]] [--params-out PARAMS.json] [--overwrite] [--pad]``: mix a folder of mono stems towards the style
  of a stereo reference mix of other music (chapter 5.2, ``notebooks/18_style_transfer_mix.ipynb``): by default
  the trained model ``style_mix`` (:func:`automix_lite.models.style_mix.transfer`) predicts every track's console
  and the master bus; ``--optimise`` searches per-track gain, pan and EQ gains and the master gain
  (:func:`automix_lite.style_optimise.optimise_mix`). ``--params-out`` writes a parameter file (console ``full``)
  that ``automix render STEMS_DIR --params PARAMS.json`` renders to the same mix. A reference at another sample
  rate is resampled to the input's with a notice; one that is silent, shorter than 0.5 s, unreadable or (for
  ``style``) mono is an error; ``--model`` must be a model of the command's kind.
- ``automix train CONFIG --out DIR [--resume | --overwrite] [--steps N] [--nproc N]``: train a DMC, a
  Mix-Wave-U-Net or (``"model": "proxy"``) the channel-chain proxy, all through one loop
  (:func:`automix_lite.train.train`).
- ``automix data --out DIR [--soundfont PATH] [--jobs N] [--quality Q] [--only TEXT]``: regenerate the bundled
  multitrack set (``python -m automix_lite.data.render``; needs FluidSynth and a General MIDI SoundFont).
- ``automix models``: the bundled checkpoints.
- ``automix listening-test MIXES --out DIR --design {mushra,ape} [--seconds S] [--lufs L] [--no-anchors] ...``:
  a self-contained static MUSHRA or APE test page from ``MIXES/<passage>/<system>.wav`` (chapter 4.2,
  :func:`automix_lite.listening.make_test`, ``notebooks/16_listening_tests.ipynb``).
- ``automix listening-analyse CSV [CSV ...] [--out DIR] [--overwrite] [--design D] [--alpha A] ...``: the
  statistics of the results CSV(s) of that page (chapter 4.2, :func:`automix_lite.listening.analyse`,
  ``notebooks/16_listening_tests.ipynb``): BS.1534 post-screening, Kruskal-Wallis + Conover (as the thesis),
  Friedman + post-hoc and Wilcoxon/Holm; prints the overall results; ``--out`` writes tables, report, plots.
- ``automix evaluate MIX --reference REF [--json OUT] [--compat] [--trim] [--overwrite]``: the mix features of
  chapter 4.1 (:mod:`automix_lite.features`, ``notebooks/15_objective_evaluation.ipynb``) of a mix against a
  reference: per feature both values and the percentage error, per group the MAPE; two folders are matched
  by file name (without the ending) and get the mean per group too. ``--json`` writes the numbers.

Nothing is ever overwritten without ``--overwrite``; no output may be an input (a stem, the ``--model``
checkpoint, the ``--params`` file) or another output, nor lie in the stems folder. Every output is checked
(name, folder, format, writable) before any work and written to a temporary file that is renamed into place
when complete, all outputs of a command together: a failed or killed run leaves the previous files as they
were, and of two runs racing for the same new file only one succeeds. Bad inputs end with one line
``automix: error: ...`` and exit status 2; notices are ``automix: warning: ...`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import warnings


def _info(args) -> int:
    import numba
    import numpy
    import scipy
    import torch

    import automix_lite
    from automix_lite import config, dsp

    try:
        import torchaudio

        ta = torchaudio.__version__
    except ImportError:
        ta = "not installed (optional)"
    print(f"automix-lite {automix_lite.__version__}")
    print(f"run mode     {config.mode()} (AUTOMIX_MODE)")
    print(f"device       {config.device()}")
    print(f"python       {platform.python_version()}")
    for name, version in (("torch", torch.__version__), ("torchaudio", ta), ("numpy", numpy.__version__),
                          ("scipy", scipy.__version__), ("numba", numba.__version__)):
        print(f"{name:<12} {version}")
    print("\nparameter ranges (low, high, unit):")
    for title, ranges in (("EQ", dsp.EQ_RANGES), ("compressor", dsp.COMPRESSOR_RANGES), ("reverb", dsp.REVERB_RANGES)):
        print(f"  {title}")
        for key, value in ranges.items():
            low, high, unit = value
            print(f"    {key:<18} {low:g} .. {high:g} {unit}")
    return 0


def _same(a: str, b: str) -> bool:
    a, b = os.path.realpath(a), os.path.realpath(b)
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs(stems_dir, outputs: list, overwrite: bool, inputs: list = ()) -> list:
    """Refuse, before any work, outputs ``[(flag, path)]`` that are inputs (the stems, ``inputs`` as
    ``[(what, path)]``), coincide, lie in the stems folder, exist (without --overwrite) or cannot be written
    (``_checks.check_output``). Returns the input stems' paths (none when ``stems_dir`` is None: no stems)."""
    from ._checks import check_output
    from .inference import stem_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read_stems gives the notices once, later
        stems = stem_files(stems_dir) if stems_dir is not None else []
    protected = [("one of the input stems", p) for p in stems] + [(what, p) for what, p in inputs if p]
    folder = os.path.realpath(stems_dir) if stems_dir is not None else None
    for k, (flag, path) in enumerate(outputs):
        for what, other in protected:
            if _same(path, other):
                raise ValueError(f"{flag} {path} is {what}; refusing to write over an input. Choose another name.")
        for flag2, other in outputs[:k]:
            if _same(path, other):
                raise ValueError(f"{flag2} and {flag} name the same file {path}; give each its own name.")
        if folder is not None and os.path.realpath(os.path.dirname(os.path.abspath(path))) == folder:
            raise ValueError(f"{flag} {path} lies in the stems folder {stems_dir}; the next run would read it as a "
                             "stem. Write it somewhere else.")
        check_output(path, overwrite, flag)
    return stems


def _min_samples(model) -> int:
    """The shortest input a model can analyse: a DMC's log-mel front end needs more than half its FFT."""
    from .models.dmc import DMC

    return model.encoder.frontend.n_fft // 2 + 1 if isinstance(model, DMC) else 1


def _mix(args) -> int:
    from . import audio, inference, pretrained
    from . import parameters as param_files
    from ._checks import atomic_outputs

    outputs = [("--out", args.out)] + ([("--params-out", args.params_out)] if args.params_out else [])
    _check_outputs(args.stems, outputs, args.overwrite, [("the --model checkpoint", pretrained.model_file(args.model))])
    _, subtype = audio.output_format(args.out, None)
    from .mixer import check_mixer

    try:
        model = check_mixer(pretrained.load(args.model))  # used through the mixer protocol only
    except TypeError as err:  # e.g. the channel-strip proxy: a checkpoint of the one format, but not a mixer
        raise ValueError(f"--model {args.model} is not a mixing model ({err}); use a DMC or Mix-Wave-U-Net "
                         "checkpoint (see `automix models`).") from None
    has_params = model.has_params
    if args.params_out and not has_params:
        raise ValueError(f"{args.model} writes the mix directly (Mix-Wave-U-Net) and has no parameters for "
                         "--params-out; use a DMC model.")
    sr = int(model.sample_rate)
    tracks, names = inference.read_stems(args.stems, sample_rate=sr, max_tracks=model.max_tracks, pad=args.pad)
    t, need = tracks.shape[-1], _min_samples(model)
    if t < need:
        raise ValueError(f"the stems are {t} samples ({t / sr:.3f} s) long, too short for {args.model}: it needs at "
                         f"least {need} samples ({need / sr:.3f} s at {sr} Hz). Use longer stems.")
    print(f"mixing {len(names)} stems ({t / sr:.1f} s at {sr} Hz) with {args.model}")
    mix, params = inference.mix_stems(model, tracks, block_seconds=args.block_seconds, sample_rate=sr, log=print)
    if has_params:
        print(param_files.table(params, names))
    else:
        print("this model writes the mix directly: it has no parameters to show or edit.")
    with atomic_outputs([path for _, path in outputs], args.overwrite) as temps:  # both files or neither
        audio.save(temps[0], mix, sr, overwrite=True, subtype=subtype)
        if args.params_out:
            data = param_files.to_json(params, names, sr, model=args.model, pad=args.pad)
            with open(temps[1], "w") as f:
                f.write(param_files.json_text(data))
    print(f"wrote {args.out} (stereo, 24-bit WAV-PCM)" if args.out.lower().endswith(".wav") else f"wrote {args.out}")
    if args.params_out:
        print(f"wrote {args.params_out}: edit it and run `automix render {args.stems} --params {args.params_out} "
              "--out NEW.wav`")
    return 0


def _peak_notice(gain_db: float, what: str = "mix") -> None:
    """The line ``automix`` prints when :func:`automix_lite.inference.limit_peak` turned the output down."""
    if gain_db:
        from .inference import CEILING_DB

        print(f"the {what} peaked above {CEILING_DB:g} dBFS; scaled it by {gain_db:+.2f} dB so that it does not clip.")


def _recording(path: str):
    """The one recording IN of ``automix style-track`` / ``automix render IN.wav``: ``(x (1, C, T), rate)``, mono or
    stereo, or one line saying what is wrong."""
    from . import audio

    try:
        x, sr = audio.load(path)
    except ValueError as err:
        raise ValueError(f"IN: {err}") from None
    if x.shape[1] > 2:
        raise ValueError(f"IN {path} has {x.shape[1]} channels; give a mono or stereo recording.")
    return x, sr


def _render_chain(args) -> int:
    """``automix render IN.wav --params CHAIN.json --out OUT.wav``: one recording through the track chain of a
    track-chain file (``automix style-track --params-out``), at the recording's own rate."""
    from . import audio, inference
    from . import parameters as param_files
    from .style_optimise import TRACK_NAMES, process_track

    _check_outputs(None, [("--out", args.out)], args.overwrite, [("the input IN", args.stems),
                                                                 ("the --params file", args.params)])
    _, subtype = audio.output_format(args.out, None)
    chain = param_files.read_chain(args.params)
    missing = [n for n in TRACK_NAMES if n not in chain["params"]]
    if missing:
        raise ValueError(f"{args.params} lacks the chain settings {missing}; write it with `automix style-track "
                         "... --params-out`.")
    x, sr = _recording(args.stems)
    y, gain_db = inference.limit_peak(process_track(x[0], sr, chain["params"]))
    _peak_notice(gain_db, "output")
    audio.save(args.out, y, sr, overwrite=args.overwrite, subtype=subtype)
    print(f"wrote {args.out}")
    return 0


def _render(args) -> int:
    from . import audio, inference
    from . import parameters as param_files

    if os.path.isfile(args.stems):  # one recording and a track-chain file
        return _render_chain(args)
    stems = _check_outputs(args.stems, [("--out", args.out)], args.overwrite, [("the --params file", args.params)])
    for stem in stems:
        if _same(args.params, stem):
            raise ValueError(f"--params {args.params} is one of the stems.")
    _, subtype = audio.output_format(args.out, None)
    file = param_files.read(args.params)
    sr, names = file.sample_rate, file.names
    tracks, found = inference.read_stems(args.stems, sample_rate=sr, pad=args.pad or file.pad)
    if found != names:
        raise ValueError(f"{args.params} describes the tracks {names} but {args.stems} holds {found}; "
                         "the names (and their order) must match.")
    mix, gain_db = inference.limit_peak(inference.render_params(tracks, file.params, sr))
    print(param_files.table(file.params, names))
    _peak_notice(gain_db, "mix")
    audio.save(args.out, mix, sr, overwrite=args.overwrite, subtype=subtype)
    print(f"wrote {args.out}")
    return 0




def _style_model(args, family: str):
    """The trained style model of ``--model`` (a bundled name or a ``.pt`` from ``automix train``), refused with one
    line when it is another kind of model (``family``: ``"style_track"`` or ``"style_mix"``)."""
    from . import pretrained

    ck = pretrained.load_checkpoint(args.model)
    kind = ck["config"]["model"]
    if kind != family:
        want = "style-track model (\"model\": \"style_track\")" if family == "style_track" else \
            "multitrack style model (\"model\": \"style_mix\")"
        raise ValueError(f"--model {args.model} is a {kind} model, not a {want}; see `automix models`.")
    return ck["model"]


def _style_signal(x, sr: int, what: str, path: str) -> None:
    """Refuse ``x (1, C, T)`` (``what`` ``path``, e.g. ``--reference REF``) that is too short or silent to have a
    style (the limits of :mod:`automix_lite.style_optimise`)."""
    from .style_optimise import MIN_SECONDS, SILENCE_DB

    t = x.shape[-1]
    if t < MIN_SECONDS * sr:
        raise ValueError(f"{what} {path} is too short: {t} samples ({t / sr:.3f} s); style transfer needs at least "
                         f"{MIN_SECONDS:g} s. Give a longer recording.")
    rms = float(x.double().square().mean().sqrt())
    if rms <= 10 ** (SILENCE_DB / 20):
        raise ValueError(f"{what} {path} is silent (RMS {20 * math.log10(max(rms, 1e-30)):.1f} dBFS, below "
                         f"{SILENCE_DB:g} dBFS): there is no style to match.")


def _style_reference(path: str, sr: int, stereo: bool):
    """The ``--reference`` at ``sr`` Hz as ``(1, C, T)``: resampled with a notice, checked (readable, at most
    two channels, stereo when ``stereo``, long enough, not silent)."""
    from . import audio

    try:
        ref, ref_sr = audio.load(path)
    except ValueError as err:
        raise ValueError(f"--reference: {err}") from None
    c = ref.shape[1]
    if c > 2 or (stereo and c != 2):
        want = "a stereo reference mix (its width and balance are matched)" if stereo else "mono or stereo"
        raise ValueError(f"--reference {path} has {c} channel{'s' * (c != 1)}"
                         f"{' (mono)' if c == 1 else ''}; give {want}.")
    if ref_sr != sr:
        warnings.warn(f"--reference {path} is at {ref_sr} Hz; resampling it to {sr} Hz (the input's rate).")
        ref = audio.resample(ref, ref_sr, sr)
    _style_signal(ref, sr, "--reference", path)
    return ref


def _style_summary(history: dict, n: int) -> str:
    steps = "steps" if history["method"] == "gradient" else "evaluations"
    return (f"optimised {n} controls ({history['method']}, {history['evaluations']} {steps}, "
            f"{history['seconds']:.1f} s): {history['objective']} objective {history['start']:.3f} -> "
            f"{history['final']:.3f}")


def _style_track(args) -> int:
    from . import audio, inference
    from ._checks import atomic_outputs
    from .style_optimise import TRACK_SPECS, optimise_track

    from . import pretrained

    outputs = [("--out", args.out)] + ([("--params-out", args.params_out)] if args.params_out else [])
    model_file = None if args.optimise else pretrained.model_file(args.model)
    _check_outputs(None, outputs, args.overwrite, [("the input IN", args.input), ("the --reference", args.reference),
                                                   ("the --model checkpoint", model_file)])
    model = None if args.optimise else _style_model(args, "style_track")
    _, subtype = audio.output_format(args.out, None)
    x, sr = _recording(args.input)
    _style_signal(x, sr, "IN", args.input)
    ref = _style_reference(args.reference, sr, stereo=False)
    print(f"matching {args.input} ({x.shape[-1] / sr:.1f} s at {sr} Hz) to the style of {args.reference}")
    if args.optimise:
        y, params, history = optimise_track(x, ref, sr, method=args.method, steps=args.steps)
        print(_style_summary(history, len(TRACK_SPECS)))
        meta = {"method": args.method, "objective": history["objective"]}
    else:
        from .models import style

        y, params = style.transfer(model, x[0], ref[0], sr)
        print(f"predicted {len(TRACK_SPECS)} settings with {args.model} (one pass)")
        meta = {"method": "model", "model": args.model}
    for s in TRACK_SPECS:
        print(f"  {s.name:<22} {params[s.name]:10.3f} {s.unit}")
    y, gain_db = inference.limit_peak(y)
    _peak_notice(gain_db, "output")
    with atomic_outputs([path for _, path in outputs], args.overwrite) as temps:  # both files or neither
        audio.save(temps[0], y, sr, overwrite=True, subtype=subtype)
        if args.params_out:
            from .parameters import chain_text

            with open(temps[1], "w") as f:  # the track-chain file of automix_lite.parameters
                f.write(chain_text(params, sr, **meta))
    print(f"wrote {args.out}")
    if args.params_out:
        print(f"wrote {args.params_out}: edit it and run `automix render {args.input} --params {args.params_out} "
              "--out NEW.wav`")
    return 0


def _style(args) -> int:
    import soundfile

    from . import audio, inference
    from . import parameters as param_files
    from ._checks import atomic_outputs
    from .style_optimise import optimise_mix

    from . import pretrained

    outputs = [("--out", args.out)] + ([("--params-out", args.params_out)] if args.params_out else [])
    model_file = None if args.optimise else pretrained.model_file(args.model)
    stems = _check_outputs(args.stems, outputs, args.overwrite, [("the --reference mix", args.reference),
                                                                ("the --model checkpoint", model_file)])
    model = None if args.optimise else _style_model(args, "style_mix")
    _, subtype = audio.output_format(args.out, None)
    try:  # the first stem's rate (read_stems resamples the others with a notice)
        sr = int(soundfile.info(stems[0]).samplerate)
    except (RuntimeError, OSError, ValueError):  # read_stems says what is wrong with the file
        sr = 44100
    tracks, names = inference.read_stems(args.stems, sample_rate=sr, pad=args.pad)
    _style_signal(tracks[None], sr, "the stems in", args.stems)
    ref = _style_reference(args.reference, sr, stereo=True)
    print(f"mixing {len(names)} stems ({tracks.shape[-1] / sr:.1f} s at {sr} Hz) towards the style of {args.reference}")
    if args.optimise:
        _, params, history = optimise_mix(tracks, ref, sr, method=args.method, steps=args.steps)
        print(_style_summary(history, 7 * len(names) + 1))
        made_by, how = f"style_optimise.optimise_mix ({args.method})", "automix style --optimise"
    else:
        from .models import style_mix

        _, params = style_mix.transfer(model, tracks, ref[0], sr)
        print(f"predicted the console of {len(names)} tracks and the master bus with {args.model} (one pass)")
        made_by, how = args.model, "automix style"
    data = param_files.to_json(params, names, sr, model=made_by, pad=args.pad,
                               comment=f"{how} towards {os.path.basename(args.reference)}")
    file = param_files.from_json(data)  # the mix written is what `automix render` makes of the file
    mix, gain_db = inference.limit_peak(inference.render_params(tracks, file.params, sr))
    print(param_files.table(file.params, names))
    _peak_notice(gain_db, "mix")
    with atomic_outputs([path for _, path in outputs], args.overwrite) as temps:  # both files or neither
        audio.save(temps[0], mix, sr, overwrite=True, subtype=subtype)
        if args.params_out:
            param_files.write(temps[1], params, names, sr, model=data["model"], pad=args.pad,  # the text of data
                              comment=data["comment"])
    print(f"wrote {args.out} (stereo)")
    if args.params_out:
        print(f"wrote {args.params_out}: edit it and run `automix render {args.stems} --params {args.params_out} "
              "--out NEW.wav`")
    return 0


def _reverse(args) -> int:
    """``automix reverse STEMS_DIR --mix MIX.wav --out PARAMS.json``: fit the full console to the stems and their
    mix (:func:`automix_lite.reverse.fit`), optionally prune it (``--prune``), and write a parameter file that
    ``automix render`` renders (chapter 5.4)."""
    import soundfile

    from . import audio, inference, reverse
    from . import parameters as param_files
    from ._checks import atomic_outputs

    stems = _check_outputs(args.stems, [("--out", args.out)], args.overwrite, [("the --mix file", args.mix)])
    try:
        sr = int(soundfile.info(stems[0]).samplerate)
    except (RuntimeError, OSError, ValueError):  # read_stems says what is wrong with the file
        sr = 44100
    tracks, names = inference.read_stems(args.stems, sample_rate=sr, pad=args.pad)
    try:
        mix, mix_sr = audio.load(args.mix)
    except ValueError as err:
        raise ValueError(f"--mix: {err}") from None
    if mix.shape[1] != 2:
        raise ValueError(f"--mix {args.mix} has {mix.shape[1]} channel(s); give the stereo mix of these stems.")
    if mix_sr != sr:
        warnings.warn(f"--mix {args.mix} is at {mix_sr} Hz; resampling it to {sr} Hz (the stems' rate).")
        mix = audio.resample(mix, mix_sr, sr)
    t = tracks.shape[-1]
    if mix.shape[-1] != t:
        if not args.trim:
            raise ValueError(f"--mix {args.mix} has {mix.shape[-1]} samples and the stems {t}; the mix must be "
                             "made of exactly these stems, sample-aligned (--trim cuts both to the shorter).")
        t = min(t, mix.shape[-1])
    x, y = tracks[:, :t], mix[0, :, :t]
    if args.seconds is not None:
        x, y = x[:, :round(args.seconds * sr)], y[:, :round(args.seconds * sr)]
    print(f"fitting the console of {len(names)} tracks to {args.mix} ({x.shape[-1] / sr:.1f} s at {sr} Hz, "
          f"{args.steps} Adam steps)")
    result = reverse.fit(x, y, sr, steps=args.steps)
    print(f"stereo loss {result['start_loss']:.3f} at the least-squares start -> {result['loss']:.3f} after the fit "
          f"({result['seconds']:.0f} s)")
    how = f"reverse.fit, {args.steps} steps"
    if args.prune:
        result = reverse.prune(x, y, sr, result, tolerance=args.tolerance, finetune_steps=args.finetune_steps)
        n = result["removed"].numel()
        print(f"pruned {int(result['removed'].sum())} of {n} processors within {args.tolerance:.0%} of the fitted "
              f"loss: {result['loss']:.3f} ({result['seconds']:.0f} s)")
        how += f", pruned within {args.tolerance:.0%}"
    params = result["params"]
    print(param_files.table(params, names))
    with atomic_outputs([args.out], args.overwrite) as temps:
        param_files.write(temps[0], params, names, sr, model="automix_lite.reverse", pad=args.pad,
                          comment=f"automix reverse ({how}) of {os.path.basename(args.mix)}")
    print(f"wrote {args.out}: edit it and run `automix render {args.stems} --params {args.out} --out NEW.wav`")
    return 0


def _train(args) -> int:
    from . import train

    if args.resume and args.overwrite:
        raise ValueError("give --resume (continue the run in --out) or --overwrite (replace it), not both.")
    model, _ = train.train(args.config, out=args.out, resume=args.resume, progress=not args.no_progress,
                           overwrite=args.overwrite, steps=args.steps, nproc=args.nproc)
    if os.environ.get("RANK", "0") != "0":  # one of several torchrun processes: rank 0 reports
        return 0
    have = [f for f in ("best.pt", "last.pt") if os.path.isfile(os.path.join(args.out, f))]
    best = os.path.join(args.out, have[0])
    from .models.tcn import TCN

    if isinstance(model, TCN):  # the channel-chain proxy: not a mixing model
        print(f"checkpoints in {args.out}: {', '.join(have)} (Table 6 with `python -m automix_lite.models.proxy "
              f"evaluate {best}`; in a DMC: DMC(\"full\", backend=\"proxy\", proxy=proxy.load_proxy(\"{best}\")))")
    else:
        print(f"checkpoints in {args.out}: {', '.join(have)} (mix with `automix mix STEMS --model {best} --out MIX.wav`)")
    return 0


def _data(args) -> int:
    """``automix data``: what ``python -m automix_lite.data.render`` does, with the same checks and messages
    (FluidSynth and the SoundFont are looked for before any work)."""
    from .data import render

    argv = ["--out", args.out, "--jobs", str(args.jobs), "--quality", str(args.quality)]
    argv += ["--soundfont", args.soundfont] if args.soundfont else []
    argv += ["--only", args.only] if args.only else []
    try:
        render.main(argv)
    except SystemExit as stop:  # render's checks end with sys.exit(MESSAGE): one automix: error line instead
        if isinstance(stop.code, str):
            raise ValueError(stop.code) from None
        raise
    return 0


def _models(args) -> int:
    from . import pretrained

    names = pretrained.available()
    if not names:
        print(f"no bundled checkpoints are installed in {pretrained.CHECKPOINT_DIR}.")
    for name in names:
        e = pretrained.REGISTRY[name]
        print(f"{name:<18} {e['task']:<6} {e['description']}")
    missing = [n for n in pretrained.REGISTRY if n not in names]
    if missing:
        print(f"not installed: {', '.join(missing)}. Any checkpoint from `automix train` works too: --model PATH.pt")
    return 0


def _evaluation_files(path: str, what: str) -> dict:
    """``{name without ending: path}`` of the audio files directly in the folder ``path`` (hidden files and
    sub-folders skipped, other files named in a warning)."""
    from .inference import AUDIO_EXTENSIONS

    found, ignored = {}, []
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if entry.startswith(".") or os.path.isdir(full):
            continue
        if not entry.lower().endswith(AUDIO_EXTENSIONS) or not os.path.isfile(full):
            ignored.append(entry)
            continue
        name = os.path.splitext(entry)[0]
        if name in found:
            raise ValueError(f"{what} {path} holds two audio files named {name!r} ({os.path.basename(found[name])}, "
                             f"{entry}); keep one so that the files can be matched by name.")
        found[name] = full
    if ignored:
        warnings.warn(f"{what}: ignoring {', '.join(ignored)} (not audio by the name)")
    if not found:
        raise ValueError(f"no audio files in {what} {path}.")
    return found


def _evaluate(args) -> int:
    import json

    from . import audio, features
    from ._checks import atomic_outputs, check_output

    out_dir, ref_dir = os.path.isdir(args.mix), os.path.isdir(args.reference)
    for p in (args.mix, args.reference):
        if not os.path.exists(p):
            raise FileNotFoundError(f"no file or folder at {p}.")
    if out_dir != ref_dir:
        raise ValueError(f"MIX {args.mix} and --reference {args.reference} must both be audio files or both folders.")
    if out_dir:
        outs, refs = _evaluation_files(args.mix, "MIX"), _evaluation_files(args.reference, "--reference")
        pairs = [(n, outs[n], refs[n]) for n in outs if n in refs]
        only_out, only_ref = [n for n in outs if n not in refs], [n for n in refs if n not in outs]
        if only_out or only_ref:
            warnings.warn("unmatched names: " + "; ".join(
                part for part in (f"only in {args.mix}: {', '.join(only_out)}" if only_out else "",
                                  f"only in {args.reference}: {', '.join(only_ref)}" if only_ref else "") if part))
        if not pairs:
            raise ValueError(f"no file of {args.mix} has a namesake in {args.reference}; name the mixes alike.")
    else:
        pairs = [(os.path.splitext(os.path.basename(args.mix))[0], args.mix, args.reference)]
    if args.json:
        for _, o, r in pairs:
            for p in (o, r):
                if _same(args.json, p):
                    raise ValueError(f"--json {args.json} is the input {p}; refusing to write over an input.")
        check_output(args.json, args.overwrite, "--json")
    results = {}
    for name, out_path, ref_path in pairs:
        try:
            out, out_sr = audio.load(out_path)
            ref, ref_sr = audio.load(ref_path)
            result = features.feature_mape(out[0].numpy(), ref[0].numpy(), (out_sr, ref_sr), compat=args.compat,
                                           trim=args.trim)
        except ValueError as err:
            raise ValueError(f"{name}: {err}" if out_dir else str(err)) from None
        results[name] = result
        print(f"{out_path} against {ref_path} ({out_sr} Hz)")
        print(features.feature_table(result))
        print()
    summary = None
    if out_dir:
        summary = {g: float(sum(r["groups"][g] for r in results.values()) / len(results)) for g in features.GROUPS}
        print(f"mean over {len(results)} mix(es): " + ", ".join(f"{g} {v:.2f} %" for g, v in summary.items()))
    if args.json:
        def finite(v):  # NaN (no audible frame in common) as null: strict JSON
            if isinstance(v, dict):
                return {k: finite(x) for k, x in v.items()}
            return None if isinstance(v, float) and not math.isfinite(v) else v

        data = {"compat": bool(args.compat), "unit": "percent", "mixes": results, "mean_groups": summary}
        with atomic_outputs([args.json], args.overwrite) as (tmp,):
            with open(tmp, "w") as f:
                json.dump(finite(data), f, indent=2, allow_nan=False)
                f.write("\n")
        print(f"wrote {args.json}")
    return 0


def _listening_test(args) -> int:
    from .listening import make_test

    index = make_test(args.mixes, args.out, design=args.design, seconds=args.seconds, lufs=args.lufs,
                      anchors=not args.no_anchors, overwrite=args.overwrite, seed=args.seed, start=args.start,
                      title=args.title, training=args.training)
    folder = os.path.dirname(index)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
    print(f"wrote {folder} ({args.design}, {size / 1e6:.1f} MB): open {index} in a browser, or put the folder on "
          "any static web host; participants download their results as CSV at the end.")
    return 0


def _listening_analyse(args) -> int:
    try:
        from .listening import analysis
    except ImportError as err:  # pandas / scikit-posthocs are in the [notebooks] extra, not the core package
        raise ValueError(f"listening-analyse needs pandas and scikit-posthocs ({err}); install them with "
                         "`pip install \"automix-lite[notebooks]\"`.") from None

    if args.out:  # refuse before any work: existing files (without --overwrite), an input among the outputs
        analysis.check_out_dir(args.out, args.overwrite, inputs=args.csv)
    result = analysis.analyse(args.csv, design=args.design, alpha=args.alpha, threshold=args.threshold,
                              max_fraction=args.max_fraction, min_time_s=args.min_time, blocks=args.blocks,
                              screen=not args.no_screening)
    print(result.to_markdown(full=False))
    if args.out:
        paths = result.write(args.out, overwrite=args.overwrite)
        print(f"wrote {len(paths)} files to {args.out}: {', '.join(os.path.basename(p) for p in paths)}")
    else:
        print("(per-page results, tables and plots: --out DIR)")
    return 0


@contextlib.contextmanager
def _warnings_as_lines():
    """Show warnings as ``automix: warning: ...`` lines on stderr (no source lines)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *rest, **kw: print(f"automix: warning: {message}", file=sys.stderr)
        yield


def _seconds(text: str) -> float:
    """argparse type: a finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (e.g. 30); got {text!r}")
    return value


def _budget(text: str) -> int:
    """argparse type: a positive whole number of steps (evaluations)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of steps (e.g. 100); got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``automix: error: ...`` line (exit status 2), like every other bad input."""

    def error(self, message):
        self.exit(2, f"automix: error: {message} (see `{self.prog} --help`)\n")


def main(argv=None) -> int:
    parser = _Parser(prog="automix", description="automix-lite: differentiable mixing tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, run mode, device and effect parameter ranges").set_defaults(func=_info)

    p = sub.add_parser("mix", help="mix a folder of mono stems with a trained model")
    p.add_argument("stems", metavar="STEMS_DIR", help="folder with one mono audio file per track")
    p.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                   help="a bundled model (see `automix models`) or a .pt file from `automix train`")
    p.add_argument("--out", required=True, metavar="MIX.wav", help="stereo output file (24-bit)")
    p.add_argument("--params-out", metavar="PARAMS.json", help="also write the predicted parameters (DMC) as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--pad", action="store_true", help="zero-pad shorter stems to the longest instead of failing")
    p.add_argument("--block-seconds", type=_seconds, default=30.0, help="render in blocks of this length (default 30)")
    p.set_defaults(func=_mix)

    p = sub.add_parser("render", help="render stems with (edited) parameters from `automix mix --params-out`, or one "
                                      "recording with a chain file from `automix style-track --params-out`")
    p.add_argument("stems", metavar="STEMS_DIR|IN", help="the stems folder, or one recording for a track-chain file")
    p.add_argument("--params", required=True, metavar="PARAMS.json")
    p.add_argument("--out", required=True, metavar="MIX.wav")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--pad", action="store_true")
    p.set_defaults(func=_render)

    for name, func in (("style-track", _style_track), ("style", _style)):
        track = name == "style-track"
        p = sub.add_parser(name, help="process one recording so that it sounds processed like a reference" if track
                           else "mix a folder of mono stems towards the style of a reference mix",
                           description=("Style transfer (chapter 5.1): an EQ -> compressor chain for IN" if track
                                    else "Mixing style transfer (chapter 5.2): every track's console and the master "
                                         "bus for the stems")
                                   + " matched to REF, predicted by a trained model (--model, default "
                                   + ("style_track" if track else "style_mix")
                                   + "); --optimise instead searches the settings for this pair (training-free"
                                   + ("" if track else ": per-track gain, pan and EQ gains and the master gain")
                                   + ").")
        if track:
            p.add_argument("input", metavar="IN", help="a mono or stereo recording")
        else:
            p.add_argument("stems", metavar="STEMS_DIR", help="folder with one mono audio file per track")
        p.add_argument("--reference", required=True, metavar="REF.wav",
                       help="a recording processed in the wanted style" if track else
                            "a stereo mix (of other music) in the wanted style")
        p.add_argument("--out", required=True, metavar="OUT.wav" if track else "MIX.wav",
                       help="the output file (24-bit where the format has it)")
        p.add_argument("--model", default="style_track" if track else "style_mix", metavar="NAME_OR_PATH",
                       help="a bundled style model (`automix models`) or a .pt from `automix train` "
                            "(default %(default)s)")
        p.add_argument("--optimise", action="store_true",
                       help="search the settings for this input and reference (the training-free route) instead "
                            "of predicting them with --model")
        p.add_argument("--method", choices=["gradient", "cma"], default="gradient",
                       help="Adam through the differentiable effects, or CMA-ES (black-box); default gradient")
        p.add_argument("--steps", type=_budget, default=150 if track else 60, metavar="N",
                       help="Adam steps, or CMA-ES evaluations (default %(default)s)")
        p.add_argument("--params-out", metavar="P.json" if track else "PARAMS.json",
                       help="also write the settings found as JSON" if track else
                            "also write the parameters as a file for `automix render`")
        p.add_argument("--overwrite", action="store_true", help="replace existing output files")
        if not track:
            p.add_argument("--pad", action="store_true",
                           help="zero-pad shorter stems to the longest instead of failing")
        p.set_defaults(func=func)

    p = sub.add_parser("reverse", help="recover the console settings of a mix from its stems (fit, then prune)",
                       description="Reverse engineering (chapter 5.4): fit every track's gain, EQ, compressor, pan and "
                                   "reverb send, the reverb bus and the master gain so that the stems render MIX "
                                   "(stereo MR-STFT loss, gradient descent through the console); --prune then removes "
                                   "the processors the mix does not need. Writes a parameter file for `automix render`.")
    p.add_argument("stems", metavar="STEMS_DIR", help="folder with one mono audio file per track")
    p.add_argument("--mix", required=True, metavar="MIX.wav", help="the stereo mix made of exactly these stems")
    p.add_argument("--out", required=True, metavar="PARAMS.json", help="the parameter file to write")
    p.add_argument("--steps", type=_budget, default=300, metavar="N", help="Adam steps of the fit (default %(default)s)")
    p.add_argument("--seconds", type=_seconds, default=None, metavar="S",
                   help="fit on the first S seconds only (faster; the settings apply to the whole song)")
    p.add_argument("--prune", action="store_true", help="then remove processors while the loss stays within --tolerance")
    p.add_argument("--tolerance", type=float, default=0.05, metavar="R",
                   help="relative loss increase pruning may cause (default %(default)s = 5 %%)")
    p.add_argument("--finetune-steps", type=_budget, default=20, metavar="N",
                   help="Adam steps that try to make up for a removal before it is refused (default %(default)s)")
    p.add_argument("--trim", action="store_true", help="cut stems and mix to the shorter if their lengths differ")
    p.add_argument("--pad", action="store_true", help="zero-pad shorter stems to the longest instead of failing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_reverse)

    p = sub.add_parser("train", help="train a DMC, Mix-Wave-U-Net or channel-chain proxy from a JSON config (see configs/)")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for best.pt, last.pt, history.json")
    p.add_argument("--resume", action="store_true", help="continue DIR/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in DIR")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--steps", type=int, metavar="N",
                   help="train N steps instead of the config's (a quick run; the checkpoint's config records it)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="data-parallel training in N processes on this machine (one per GPU on CUDA, gloo on CPU); "
                        "the config's batch_size is the global batch, split among them. Under torchrun leave it out")
    p.set_defaults(func=_train)

    p = sub.add_parser("data", help="regenerate the bundled multitrack set (FluidSynth and a General MIDI SoundFont)",
                       description="Compose, render (FluidSynth), level and mix every bundled song and drum passage "
                                   "into DIR, as `python -m automix_lite.data.render` does (`make data`).")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the set (the package's own is data/ at the repository root)")
    p.add_argument("--soundfont", metavar="PATH", help="General MIDI SoundFont (default: FluidR3_GM.sf2 where "
                                                        "distributions install it, or $AUTOMIX_SOUNDFONT)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N", help="rendering processes")
    p.add_argument("--quality", type=float, default=0.4, metavar="Q", help="Vorbis quality, 0 (small) to 1 (best)")
    p.add_argument("--only", metavar="TEXT", help="render only song ids containing TEXT (for trying things out)")
    p.set_defaults(func=_data)

    sub.add_parser("models", help="list the bundled pretrained models").set_defaults(func=_models)

    p = sub.add_parser("listening-test", help="write a static MUSHRA or APE listening-test page",
                       description="From MIXES/<passage>/<system>.wav (and MIXES/<passage>/reference.wav) write a "
                                   "self-contained folder that runs from file:// or any static host: loudness-matched "
                                   "stimuli, randomised orders, a training page and a CSV download of the ratings.")
    p.add_argument("mixes", metavar="MIXES", help="one folder per passage, one audio file per system in it")
    p.add_argument("--out", required=True, metavar="DIR", help="the test folder to write (must not exist)")
    p.add_argument("--design", choices=["mushra", "ape"], default="mushra",
                   help="mushra (ITU-R BS.1534: needs reference.wav; hidden reference and anchors) or ape (one "
                        "shared axis, no reference needed); default mushra")
    p.add_argument("--seconds", type=_seconds, default=10.0, help="stimulus length in seconds (default 10)")
    p.add_argument("--start", type=float, default=0.0, metavar="S", help="where the excerpt starts (default 0 s)")
    p.add_argument("--lufs", type=float, default=-23.0, metavar="L", help="loudness of every stimulus (default -23)")
    p.add_argument("--no-anchors", action="store_true", help="MUSHRA without the 3.5 kHz low-pass and mono anchors")
    p.add_argument("--training", metavar="PASSAGE", help="the passage of the training page (default: the first)")
    p.add_argument("--title", default="Listening test", help="the page title")
    p.add_argument("--seed", type=int, help="fixes the stimulus file numbering (same inputs, same folder)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it is a test written before")
    p.set_defaults(func=_listening_test)

    p = sub.add_parser("listening-analyse", help="statistics of listening-test results (the page's CSV files)",
                       description="Post-screen the listeners (ITU-R BS.1534-3 hidden-reference rule) and compare "
                                   "the systems: Kruskal-Wallis + Conover (as the thesis), Friedman + Conover and "
                                   "pairwise Wilcoxon with Holm, per page and overall.")
    p.add_argument("csv", nargs="+", metavar="CSV", help="results CSV file(s): one per participant, or joined")
    p.add_argument("--out", metavar="DIR", help="write the tables (CSV), report.md and plots (PNG) into DIR")
    p.add_argument("--overwrite", action="store_true", help="replace files already in DIR")
    p.add_argument("--design", choices=["mushra", "ape"], help="analyse only this design (needed if mixed)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--threshold", type=float, default=90.0,
                   help="post-screening: a hidden-reference score below this fails a page (default 90)")
    p.add_argument("--max-fraction", type=float, default=0.15,
                   help="post-screening: exclude a listener failing more than this fraction of pages (default 0.15)")
    p.add_argument("--min-time", type=float, metavar="S", help="also exclude listeners whose total time is below S s")
    p.add_argument("--blocks", choices=["listener_page", "listener"], default="listener_page",
                   help="overall repeated-measures blocks: listener x page (default) or listener means")
    p.add_argument("--no-screening", action="store_true", help="keep every listener")
    p.set_defaults(func=_listening_analyse)

    p = sub.add_parser("evaluate", help="mix features and their percentage errors against a reference mix",
                       description="Spectral, panning, dynamics and loudness features of MIX against REF (chapter "
                                   "4.1, automix_lite.features); two folders are matched by file name.")
    p.add_argument("mix", metavar="MIX", help="a stereo audio file, or a folder of them")
    p.add_argument("--reference", required=True, metavar="REF", help="the reference mix (file or folder)")
    p.add_argument("--json", metavar="OUT.json", help="also write the numbers as JSON")
    p.add_argument("--compat", action="store_true", help="the automix-toolkit's definitions, quirks included")
    p.add_argument("--trim", action="store_true", help="cut mixes of different lengths to the shorter at the end")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=_evaluate)
    args = parser.parse_args(argv)
    try:
        with _warnings_as_lines():
            return args.func(args)
    except (ValueError, OSError, ArithmeticError) as err:
        if isinstance(err, OSError) and err.errno is not None:  # from the system, not from a check of ours
            err = f"{err.filename or 'a file'}: {err.strerror}"
        print(f"automix: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
