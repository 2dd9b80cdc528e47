"""Training vqa-rt's models here, on data made from what ships in packages (torch; the ``train`` extra)."""
