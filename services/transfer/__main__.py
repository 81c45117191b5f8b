from services.transfer.transferring import TransferService
from shared.runtime import run

run(TransferService)
