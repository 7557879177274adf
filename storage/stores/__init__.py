"""Object store implementations; open them with storage.objectstore.open_store."""
