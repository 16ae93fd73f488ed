-- A model route's output cap: the most completion tokens a request may ask of the model (the
-- filter sets or lowers `max_tokens` to it). NULL = no cap.
ALTER TABLE models ADD COLUMN max_output_tokens INTEGER;
