"""Model folders: ``save`` and ``load`` (JSON config + safetensors weights)."""
