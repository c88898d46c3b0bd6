/*
 * pub_filter.hpp
 *	  Which row changes the output plugin sends: tables of realtime.publication.
 *
 * Runs in the process that decodes (output plugin callbacks), under the
 * historic catalog snapshot of the change being decoded. Results are cached
 * per relation for the life of the process and dropped by relcache and
 * publication catalog invalidations, as pgoutput does.
 *
 * Include after postgres.h and utils/rel.h.
 */
#ifndef RT_EXT_PUB_FILTER_HPP
#define RT_EXT_PUB_FILTER_HPP

namespace rt::ext
{

/* Actions of rel published by the publication named by realtime.publication */
struct PublishedActions
{
	bool insert;
	bool update;
	bool del;
};

/*
 * Look rel up in realtime.publication (directly, through an ancestor if it is
 * a partition, through its schema, or FOR ALL TABLES); all false if it is not
 * published or the publication does not exist. Row filters and column lists
 * of the publication are not applied.
 */
PublishedActions RelationPublished(Relation rel);

} // namespace rt::ext

#endif /* RT_EXT_PUB_FILTER_HPP */
