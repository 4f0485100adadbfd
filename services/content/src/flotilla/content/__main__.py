"""Composition root of the content service (``python -m flotilla.content``)."""

from flotilla.common import runtime

build = runtime.bare_builder("content", "content-addressed blob store")


def main() -> None:
    """Run the content service until SIGTERM."""
    runtime.main("content", build)


if __name__ == "__main__":
    main()
