"""Expert trajectories for trajectory matching (MTT, AST): styles, training, file format, buffers."""
from .buffer import ExpertBuffer, prepare_data, train_buffer
from .config import LOSS_RAMP, STYLES, ExpertConfig
from .files import ExpertHeader, expert_path, load_expert, read_header, read_rows, write_expert
from .training import input_gradient_penalty, train_expert

__all__ = ["ExpertBuffer", "ExpertConfig", "ExpertHeader", "LOSS_RAMP", "STYLES", "expert_path",
           "input_gradient_penalty", "load_expert", "prepare_data", "read_header", "read_rows", "train_buffer",
           "train_expert", "write_expert"]
