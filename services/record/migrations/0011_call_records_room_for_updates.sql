-- A call's events reach the projections in two or three batches (the request, then ringing and
-- answering, then the release), so each call record is written once and then updated once or
-- twice, seconds later. An update is cheap (HOT: no index touched) only when the row's new
-- version fits on its own page; at fillfactor 85 the pages of the calls under way filled up and
-- three updates in four were not HOT, each then adding an entry to every one of the table's
-- seven indexes. Half of each new page is left for those later versions (pages written before
-- keep their fill).
ALTER TABLE call_records SET (fillfactor = 50);
