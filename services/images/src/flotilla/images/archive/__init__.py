"""Image tarballs in and out, as containerd's ``images/archive`` (``ctr images import/export``).

:func:`import_archive` writes the blobs of an OCI image layout or a ``docker save`` tarball
into a content store and says which images they make; :func:`export_archive` writes images
from a content store as an OCI image layout tarball that ``docker load`` also reads.
"""

from flotilla.images.archive.exporter import Source, export_archive
from flotilla.images.archive.importer import Imported, import_archive

__all__ = ["Imported", "Source", "export_archive", "import_archive"]
