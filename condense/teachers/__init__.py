"""Teachers as artifacts, for the decoupled family (SRe2L, RDED, INFER): networks trained once on the real
training split by ``condense teachers`` (resumable, one network file each), loaded and checked by every
method and by the evaluator, averaged into an ensemble, and named in a set by their checksums."""
from .ensemble import Ensemble, static_logits
from .files import (CATALOG, Teacher, check_reference, default_teachers_dir, find_reference, is_teacher_folder,
                    load_teachers, reference_of, teacher_file, write_catalog)
from .training import RANGES, TeacherRecipe, train_teachers

__all__ = ["CATALOG", "Ensemble", "RANGES", "Teacher", "TeacherRecipe", "check_reference", "default_teachers_dir",
           "find_reference", "is_teacher_folder", "load_teachers", "reference_of", "static_logits", "teacher_file",
           "train_teachers", "write_catalog"]
