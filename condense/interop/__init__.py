"""Sets that travel: export to the layouts other code reads, import the layouts other code writes."""
from .export import FORMATS, export_set, exported
from .importer import import_set
from .layouts import LAYOUTS, read
from .torch_files import file_sha256, load_torch_file

__all__ = ["FORMATS", "LAYOUTS", "export_set", "exported", "file_sha256", "import_set", "load_torch_file", "read"]
