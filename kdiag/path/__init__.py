"""The request path's stages: wire, container, TF Serving parse/response, runtime."""
