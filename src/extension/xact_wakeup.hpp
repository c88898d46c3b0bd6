/*
 * xact_wakeup.hpp
 *	  Wake the decoder worker when a transaction that wrote WAL commits.
 */
#ifndef RT_EXT_XACT_WAKEUP_HPP
#define RT_EXT_XACT_WAKEUP_HPP

namespace rt::ext
{

/* Register the transaction callback; call once from _PG_init (inherited by every backend) */
void XactWakeupInit(void);

} // namespace rt::ext

#endif /* RT_EXT_XACT_WAKEUP_HPP */
