"""The SQLite trajectory store: connecting and migrating, the writer, the reader, retention."""
