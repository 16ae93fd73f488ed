-- Issue 13: IdP tokens as admin credentials. JSON list of {"group", "role"}: members of the
-- group may call the admin API with the issuer's tokens, as the role. Empty = none may.
ALTER TABLE identity_providers ADD COLUMN admin_roles TEXT NOT NULL DEFAULT '[]';
