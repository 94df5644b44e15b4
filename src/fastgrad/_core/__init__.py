"""fastgrad's compiled core (layout and layers: README.md in this directory)."""
