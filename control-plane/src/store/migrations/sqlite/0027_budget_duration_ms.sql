-- Issue 18: a budget object's max_budget is enforced on each key, team and user it is attached
-- to, over windows of its budget_duration. The duration in milliseconds, as scopes store
-- theirs (budget_duration_ms), so one query sums every budgeted scope's current window.
ALTER TABLE budgets ADD COLUMN budget_duration_ms INTEGER;
-- Stored durations were validated as digits and one unit (s, m, h, d, w, y).
UPDATE budgets SET budget_duration_ms =
    CAST(substr(budget_duration, 1, length(budget_duration) - 1) AS INTEGER)
    * CASE substr(budget_duration, length(budget_duration), 1)
        WHEN 's' THEN 1000 WHEN 'm' THEN 60000 WHEN 'h' THEN 3600000 WHEN 'd' THEN 86400000
        WHEN 'w' THEN 604800000 WHEN 'y' THEN 31536000000 END
    WHERE budget_duration IS NOT NULL;
