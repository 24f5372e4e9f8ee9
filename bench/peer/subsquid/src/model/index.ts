export * from './transfer.model'
export * from './account.model'
