"""Model sources: the zoo, the darknet importer and the pretrained detector shipped in a wheel."""
