"""OpenL3 audio embeddings in NumPy: no TensorFlow, same numbers.

Modules: :mod:`.frontend` (windows and spectrograms), :mod:`.weights`
(reading, finding and downloading the official weight files), :mod:`.model`
(the network). Everything public is re-exported here.

This package re-implements inference of the official ``openl3`` 0.4.2 audio
networks with its **librosa frontend** (``frontend="librosa"``), reading the
official Keras-2 HDF5 weight files with h5py. What is matched, step by step
:

Audio and windows (:func:`frame_audio`)
    * ``(N, C)`` input is mixed to mono with the mean over channels (in
      float64); any rate other than 48 kHz is resampled with ``resampy``,
      filter ``kaiser_best`` (output length ``int(N * 48000 / sr)``).
    * 1-s windows of 48,000 samples, hop ``int(hop_size * 48000)``.
    * ``center=True`` prepends 24,000 zeros (start only).
    * End padding: shorter than 48,000 -> zero-pad to 48,000, otherwise append
      zeros so that ``length - 48000`` is a whole number of hops.
    * ``n = 1 + (padded - 48000) // hop``; window ``i`` starts at ``i * hop``;
      timestamps are ``arange(n) * hop_size`` seconds.

Frontend (:func:`spectrogram`), computed in float64 for a batch of windows
    * mel128 / mel256: magnitude (power 1) STFT with ``n_fft=2048``, hop 242,
      periodic Hann, ``center=True`` with 1024 zeros each side (librosa >= 0.9
      pads with zeros), times the Slaney-scale, Slaney-normalised mel
      filterbank (fmin 0, fmax 24000) built by ``librosa.filters.mel`` in
      float32, giving ``(n_mels, 199)``.
    * linear: ``|STFT|`` with ``n_fft=512``, hop 242, periodic Hann,
      ``center=False`` giving ``(257, 197)``.
    * dB as ``librosa.power_to_db(S, ref=1, amin=1e-10, top_db=80)`` then
      ``S -= S.max()``, per window: values in [-80, 0]. Cast to float32.

Network (:class:`OpenL3Model`), channels last, input ``(freq, time, 1)``
    * BatchNorm on the input; three blocks of ``[3x3 conv 'same' + bias ->
      BN -> ReLU] x 2 -> 2x2 max-pool stride 2 (floor)`` with 64, 128, 256
      filters; then ``conv512 -> BN -> ReLU -> conv512`` (the
      ``audio_embedding_layer``: no BN or ReLU after it).
    * BN at inference: ``gamma * (x - mean) / sqrt(var + 0.001) + beta``.
      The BN after each conv is folded into that conv's kernel and bias
      (exact algebra); the input BN is applied explicitly because the
      following conv zero-pads *after* it.
    * Convolutions are cross-correlations with Keras kernels
      ``(kh, kw, in, out)``, computed as im2col + one BLAS GEMM per layer in
      float32 (float64 available for checks), windows batched, the im2col
      buffer bounded in size.
    * Final max-pool of ``POOL_SIZES[repr][size]`` (stride = size, the sizes
      divide the map exactly) and a row-major flatten over
      ``(freq block, time block, channel)``.

Weights (:func:`load_weights`)
    Keras 2 ``save_weights`` HDF5: root attribute ``layer_names``, per layer
    attribute ``weight_names``. Layers are taken in file order, keeping those
    that have weights (16 expected), exactly as Keras loads by topology; names
    are never relied on. Every shape is checked.

The float32 forward pass stays within about 1e-6 relative (norm) of the same
computation in float64; see ``tests/test_openl3.py``.
"""
from .frontend import (  # noqa: F401
    TARGET_SR, WINDOW, INPUT_REPRS, CONTENT_TYPES, EMBEDDING_SIZES, INPUT_SHAPES, DB_AMIN,
    DB_TOP, MEL_N_FFT, LINEAR_N_FFT, SPEC_HOP, check_options, hop_samples, resampled_length,
    window_count, window_timestamps, to_mono_float64, resample_to_48k, frame_audio,
    mel_filterbank, spectrogram,
)
from .weights import (  # noqa: F401
    BN_EPS, LAYER_SPECS, BN_WEIGHTS, CONV_WEIGHTS, WEIGHTS_ENV, DEFAULT_WEIGHTS_DIR,
    WEIGHTS_URL, weights_filename, OpenL3Weights, load_weights, WeightsSearch,
    installed_openl3_dir, find_weights, download_weights,
)
from .model import (  # noqa: F401
    POOL_SIZES, OpenL3Model, load_model,
)
