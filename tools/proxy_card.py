"""Write the model card of the bundled proxy and benchmarks/PROXY_RESULTS.md from the checkpoint itself.

    automix train configs/proxy_cpu.json --out runs/proxy_cpu
    cp runs/proxy_cpu/last.pt automix_lite/checkpoints/proxy_channel.pt
    python -m automix_lite.models.proxy evaluate automix_lite/checkpoints/proxy_channel.pt --save
    python tools/proxy_card.py

Every number comes from the checkpoint (config, history, code version, the stored Table 6 and dry reference).
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _cpu() -> str:
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from harness import cpu_model

    return cpu_model()


def main() -> None:
    import torch

    from automix_lite import train
    from automix_lite.data.bundled import file_sha256
    from automix_lite.models import proxy

    path = proxy.BUNDLED_CHECKPOINT
    ck = proxy.load_checkpoint(path)
    cfg, h, m, model = ck["config"], ck["history"], ck["metrics"], ck["model"]
    converted = ck["extra"].get("converted_from")
    provenance = (f"Trained by the proxy's first training loop (code {ck['code_version']}, checkpoint format "
                  f"`{converted['format']}`) before the proxy joined the one training loop of `automix train`; "
                  f"stored since in the format of every model of the package (`automix-lite-model/1`) with the same "
                  f"weights, bit for bit (`proxy.upgrade_checkpoint`; the old payload's sha256 "
                  f"`{converted['sha256'][:16]}...` is recorded in the file). Its initial weights came from an "
                  f"unrecorded random state: the one loop seeds them with `seed` and then draws the first loop's "
                  f"batches, so a new run of the config trains another sample of the same training, not these "
                  f"weights." if converted else
                  f"Trained by `automix train` (code {ck['code_version']}).")
    if "table6" not in m or "dry" not in m:
        raise SystemExit("run `python -m automix_lite.models.proxy evaluate CHECKPOINT --save` first.")
    t6, dry = m["table6"], m["dry"]
    rf, sr = model.receptive_field, proxy.SAMPLE_RATE
    table = proxy.format_table(t6)
    dry_table = proxy.format_table(dry, reference=None)
    better = [c for c in t6 if all(t6[c][k][0] < dry[c][k][0] for k in ("MAE", "MR-STFT"))]
    worse = [c for c in t6 if c not in better]
    vals = ", ".join(f"{s}: {v:.4f}" for s, v in list(zip(h["val_step"], h["val_loss"]))[::5])
    lrs = sorted(set(h["lr"]), reverse=True)
    summary = (f"On the held-out stems the proxy is closer to the chain's output than the unprocessed input on both "
               f"MAE and MR-STFT in {len(better)} of {len(t6)} cases ({', '.join(better) or 'none'})"
               + (f"; not in {', '.join(worse)}." if worse else ".")
               + f" Combined case: ESR {t6['combined']['ESR'][0]:.3f} (dry {dry['combined']['ESR'][0]:.3f}, thesis "
               f"TCN-20 0.292), MR-STFT {t6['combined']['MR-STFT'][0]:.3f} (dry {dry['combined']['MR-STFT'][0]:.3f}).")
    n_train = len(train.proxy_stems("train"))
    n_test = len(train.proxy_stems("test"))
    card = f"""# Model card: `proxy_channel.pt` (neural proxy of the channel chain)

A FiLM-conditioned TCN (`automix_lite.models.TCN`) that imitates the channel chain parametric EQ -> compressor ->
reverb of `automix_lite.models.proxy.channel_chain` (Steinmetz 2020, sec. 4.2.5, fig. 8), conditioned on the
chain's {proxy.N_PARAMS} parameters normalised to [-1, 1] (sec. 4.3.3; order `proxy.NAMES`). Taught in
`notebooks/09_neural_proxies.ipynb`; usable inside the DMC (`DMC("full", backend="proxy")`, chapter 3.2).

**A small model trained for {h['wall_seconds'] / 60:.0f} minutes on a 2-core CPU.** {summary}
The full set-up, `configs/proxy_full.json` (TCN-20, 32 channels, kernel 15, receptive field 649.5 ms), is meant
for a GPU and has not been run (no GPU was lent to this project so far).

## Model

- Preset `{cfg['preset']}` with {cfg['channels']} channels and kernel {cfg['kernel_size']} (the thesis: 32 channels,
  kernel 15), {len(model.blocks)} blocks, dilations 1 ... 512; FiLM generator {proxy.N_PARAMS} -> 16 -> 32 -> 32.
- **Direct path** (`direct: {str(cfg.get('direct', False)).lower()}`, not in the thesis): the input is added to the
  network's output and the output layer starts at zero, so training starts from the identity and the network
  learns only what the chain changes. An earlier version without it (3224 steps, 51 min) stayed worse than the
  unprocessed input on every case.
- Receptive field {rf} samples = {1000 * rf / sr:.1f} ms at {sr} Hz (eq. 4.14); the reverb's T60 (0.3-1.5 s) is
  longer, so most of a tail lies outside the window.
- Trainable parameters: {model.n_params}. File size: {os.path.getsize(path) / 1024:.0f} KiB (float32).

## Data

- Training: every stem of the bundled TRAIN split ({n_train} stems of songs and drum passages, mono, 44.1 kHz),
  random patches of {cfg['patch_seconds']:g} s output plus the receptive field as context, near-silent patches
  skipped, sec. 4.4 augmentations, fresh uniform parameters every step, mixup alpha = {cfg['mixup_alpha']:g}.
- Validation (plateau schedule): {cfg['val_examples']} fixed patches of VAL stems, all processors active.
- Test (below): {m['examples']} fixed examples of {m['seconds']:g} s per case from the {n_test} TEST stems.

## Training

```json
{json.dumps({k: v for k, v in cfg.items()}, indent=1)}
```

- Adam, lr {cfg['lr']:g}, loss L1 (eq. 4.17) + {cfg.get('stft_weight', 0):g} x MR-STFT, gradient-norm clip
  {cfg['grad_clip']:g}, `ReduceLROnPlateau` (factor {cfg['lr_factor']:g}, patience {cfg['lr_patience']} validations,
  one every {cfg['val_every']} steps). Learning rates used: {', '.join(f'{v:.2e}' for v in lrs)}.
- {h['steps_done']} steps of batch {cfg['batch_size']} in one run bounded by steps, {h['wall_seconds'] / 60:.1f} min
  ({h['wall_seconds'] / h['steps_done']:.2f} s/step) on {h.get('cpu') or _cpu()}, {cfg['threads']} threads, shared with other jobs;
  torch {torch.__version__}.
- Validation L1 by step (every 5th): {vals}.
- {provenance}

## Results on held-out TEST stems (Table 6 layout)

Per case, parameters uniform in the training ranges with the other processors bypassed; mean (std). MAE eq.
4.17; ESR `sum (y - y_hat)^2 / sum y^2`; MCD eqs. 4.20-4.21 (k = 25 librosa MFCCs); MR-STFT `losses.MRSTFTLoss`
(Table 5 resolutions). Thesis columns: TCN-20 of Steinmetz (2020), Table 6 (other audio, other effect
implementations: only orders of magnitude compare).

{table}

The same examples with the **dry input passed through unchanged** (the floor a useful proxy must beat):

{dry_table}

ESR means of the compressor and combined cases are dominated by a few examples with a very quiet target (a low
threshold with a high ratio), where any error is large relative to the target's energy.

## Reproduce

```
automix train configs/proxy_cpu.json --out runs/proxy_cpu
cp runs/proxy_cpu/last.pt automix_lite/checkpoints/proxy_channel.pt
python -m automix_lite.models.proxy evaluate automix_lite/checkpoints/proxy_channel.pt --examples {m['examples']} --seconds {m['seconds']:g} --save
python tools/proxy_card.py
```

## Checksum

sha256 of `proxy_channel.pt`: `{file_sha256(path)}` (`load_checkpoint` also verifies the sha256 of the payload
stored inside the file).
"""
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(card)
    with open(os.path.join(ROOT, "benchmarks", "PROXY_RESULTS.md"), "w") as f:
        f.write(f"""# Neural proxy of the channel chain (Steinmetz 2020, Table 6 layout)

Bundled checkpoint `automix_lite/checkpoints/proxy_channel.pt` ({cfg['preset']}, {cfg['channels']} channels, kernel
{cfg['kernel_size']}, direct path, receptive field {1000 * rf / sr:.1f} ms, {model.n_params} parameters), trained
{h['steps_done']} steps in {h['wall_seconds'] / 60:.1f} min on 2 CPU cores ({h.get('cpu') or _cpu()}); {m['examples']} TEST examples of
{m['seconds']:g} s per case, mean (std). Thesis TCN-20 from Table 6 (different audio and effect implementations). See the
model card `automix_lite/checkpoints/proxy_channel.md`. {summary}

{table}

The same examples with the dry input passed through unchanged:

{dry_table}
""")
    print(card)


if __name__ == "__main__":
    main()
