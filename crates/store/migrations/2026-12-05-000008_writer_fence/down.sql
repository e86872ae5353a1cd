DROP TABLE writer_fences;
