"""Teachers as artifacts, for the decoupled family (SRe2L, RDED, INFER): networks trained once on the real
training split by ``condense teachers`` (resumable, one network file each), loaded and checked by every
method and by the evaluator, averaged into an ensemble, and named in a set by their checksums; the teacher folder
also keeps the self-supervised targets KRR-ST sets and the masked autoencoders DQ sets name by checksum
(``named``)."""
from .ensemble import Ensemble, static_logits
from .files import (CATALOG, CATALOG_ROLES, Teacher, check_reference, default_teachers_dir, find_reference,
                    is_teacher_folder, load_teachers, record_in_catalog, reference_of, teacher_file, write_catalog)
from .named import check_named, file_hint, find_network, network_reference, option_file
from .training import RANGES, TeacherRecipe, train_teachers

__all__ = ["CATALOG", "CATALOG_ROLES", "Ensemble", "RANGES", "Teacher", "TeacherRecipe", "check_named",
           "check_reference", "default_teachers_dir", "file_hint", "find_network", "find_reference",
           "is_teacher_folder", "load_teachers", "network_reference", "option_file", "record_in_catalog",
           "reference_of", "static_logits", "teacher_file", "train_teachers", "write_catalog"]
