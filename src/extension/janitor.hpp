/*
 * janitor.hpp
 *	  The janitor background worker: retention of realtime.messages.
 */
#ifndef RT_EXT_JANITOR_HPP
#define RT_EXT_JANITOR_HPP

namespace rt::ext
{

/* Register the janitor worker; call once from _PG_init (postmaster, preloading) */
void JanitorRegister(void);

} // namespace rt::ext

#endif /* RT_EXT_JANITOR_HPP */
