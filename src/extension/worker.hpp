/*
 * worker.hpp
 *	  The decoder background worker: slot "realtime" into the ring.
 */
#ifndef RT_EXT_WORKER_HPP
#define RT_EXT_WORKER_HPP

namespace rt::ext
{

/* Register the decoder worker; call once from _PG_init (postmaster, preloading) */
void WorkerRegister(void);

} // namespace rt::ext

#endif /* RT_EXT_WORKER_HPP */
