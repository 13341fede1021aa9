"""po-connector adapter for JsonProc, a JSON-over-HTTP procurement system."""
