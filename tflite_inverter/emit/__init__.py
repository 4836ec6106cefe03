"""Writing the inverted model: SavedModel and frozen GraphDef, atomically."""
