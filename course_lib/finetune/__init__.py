"""Fine-tuning with XTuner: the config, the run (progress, failure detection, resume), the conversion."""
