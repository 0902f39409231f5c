"""File-system access shared by the stages that read trees they do not trust (`beneath`)."""
