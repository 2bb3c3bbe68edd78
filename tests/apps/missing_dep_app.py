"""An app module that imports a package that does not exist."""

import wakaq_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401
