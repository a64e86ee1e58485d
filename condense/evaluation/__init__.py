"""Evaluation: protocols as data, the evaluator, cross-architecture grids, teachers, typed reports.

``tables`` (terminal and Markdown) and ``plots`` (PNG reports, matplotlib) are imported on their own.
"""
from .evaluator import GRID_MODELS, evaluate, labels_for, resolve_models, resolve_protocol
from .grid import REFERENCES, run_grid
from .protocol import Protocol, TeacherSpec, get_protocol, list_protocols
from .real_data import real_data_for
from .results import EvalReport, GridReport, ModelResult, load_reports

__all__ = ["EvalReport", "GRID_MODELS", "GridReport", "ModelResult", "Protocol", "REFERENCES", "TeacherSpec",
           "evaluate", "get_protocol", "labels_for", "list_protocols", "load_reports", "real_data_for",
           "resolve_models", "resolve_protocol", "run_grid"]
