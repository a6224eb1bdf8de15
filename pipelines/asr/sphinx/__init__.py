"""pocketsphinx's decoding machinery, one job per module.

``decoder_pool`` (decoder configuration and idle decoders), ``thread_decoder`` (one call's decoder on a thread
of this process), ``worker_client`` (the pipe client of one decoding worker process and the streams it
serves), ``worker_supervisor`` (starts the worker processes and replaces those that exit), ``file_decoder``
(a whole recording with word timings) and ``results`` (what every stream hands back). The backend and the
per-call STT service that use them are in ``pipelines.asr.pocketsphinx``.
"""
