"""The files of a run directory (Hydra's `outputs/DATE/TIME`), named once for the writers and the readers."""

BEST_MODEL = "best.keras"  # the best epoch by trainer.monitor: what predict and export load from a run directory
CHECKPOINT_DIR = "checkpoint"  # the resume checkpoint: state.json and the weights it names
STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"  # the resolved config of the run
PREVIEW_FILE = "predictions.png"
MODEL_SUMMARY_FILE = "model_summary.txt"
