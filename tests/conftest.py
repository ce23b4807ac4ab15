"""pytest puts this folder on sys.path (it holds a conftest), so tests can import testing_utils."""
