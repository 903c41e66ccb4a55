-- Reserved: the version another branch's migration takes (hspeed); this one does nothing. Where
-- both branches meet, theirs replaces this file.
SELECT 1;
